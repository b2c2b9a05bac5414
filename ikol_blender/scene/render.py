"""Rendering the posed body over the footage: Cycles on the CPU renders the body on a transparent
film, and the compositor lays it over the footage the matched camera shows at that frame (its
background image or Movie Clip, see camera.py).

Made for the headless CLI: it sets the scene's render settings and compositor.
"""

import os
from collections.abc import Callable
from pathlib import Path

import bpy


class RenderError(ValueError):
    """The frame cannot be rendered over footage; the message says why."""


def render_over_footage(scene: bpy.types.Scene, camera: bpy.types.Object,
                        frames: list[int], outputs: list[Path], samples: int = 16,
                        scale: int = 100, done: Callable[[int], None] = lambda count: None) -> None:
    """Render each scene frame in `frames` through `camera` over the footage its background
    shows at that frame, as a PNG at the matching path in `outputs` (each written whole), at
    `scale` percent of the footage's size; `done` is told how many frames are written so far.

    The render size must already match the footage (see camera.set_render_size). More than
    one sample per pixel is denoised (OpenImageDenoise, on the CPU); one sample is a quick look.
    """
    scene.camera = camera
    scene.render.resolution_percentage = scale
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = samples > 1
    scene.render.film_transparent = True
    scene.render.use_compositing = True
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    _ensure_light(scene)
    image_node, clip_node = _compositor(scene)
    for count, (frame, output) in enumerate(zip(frames, outputs), start=1):
        scene.frame_set(frame)
        shown = _shown_background(camera)
        if shown is None:
            raise RenderError(f"{camera.name} shows no footage at frame {frame}")
        footage = image_node if shown.source == "IMAGE" else clip_node
        image_node.image, clip_node.clip = shown.image, shown.clip
        _link(scene, footage)
        partial = output.with_name(f".{output.stem}.partial.png")
        scene.render.filepath = str(partial)
        try:
            bpy.ops.render.render(write_still=True)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
        done(count)


def _shown_background(camera: bpy.types.Object) -> bpy.types.CameraBackgroundImage | None:
    """The background entry the camera shows at the current frame (keyed visibility applied,
    as evaluated; the entry returned is the original, whose image or clip can be used)."""
    evaluated = camera.data.evaluated_get(bpy.context.evaluated_depsgraph_get())
    for shown, background in zip(evaluated.background_images, camera.data.background_images):
        if shown.show_background_image and (background.image or background.clip):
            return background
    return None


def _compositor(scene: bpy.types.Scene) -> tuple[bpy.types.Node, bpy.types.Node]:
    """A compositor of Render Layers over a footage node (an image or a clip node, linked per
    frame); returns those two footage nodes."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0: node groups, a Group Output
        tree = bpy.data.node_groups.new("IKOL over footage", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
    else:  # Blender 4.2-4.5: the scene's own tree, a Composite node
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite")
    layers = tree.nodes.new("CompositorNodeRLayers")
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.name = "IKOL over"
    tree.links.new(layers.outputs["Image"], _input(over, "Foreground", 2))
    tree.links.new(over.outputs["Image"], output.inputs[0])
    resize = tree.nodes.new("CompositorNodeScale")  # the footage to the render's size
    resize.name = "IKOL footage size"
    if "Type" in resize.inputs:  # Blender 5.0: menu inputs
        resize.inputs["Type"].default_value = "Render Size"
        resize.inputs["Frame Type"].default_value = "Stretch"
    else:
        resize.space, resize.frame_method = "RENDER_SIZE", "STRETCH"
    tree.links.new(resize.outputs["Image"], _input(over, "Background", 1))
    return tree.nodes.new("CompositorNodeImage"), tree.nodes.new("CompositorNodeMovieClip")


def _link(scene: bpy.types.Scene, footage: bpy.types.Node) -> None:
    """Make `footage` the Alpha Over's background (through the resize)."""
    tree = getattr(scene, "compositing_node_group", None) or scene.node_tree
    tree.links.new(footage.outputs["Image"], tree.nodes["IKOL footage size"].inputs["Image"])


def _input(node: bpy.types.Node, name: str, legacy_index: int) -> bpy.types.NodeSocket:
    """An Alpha Over input by its 5.0 name, or by its place in 4.x (Fac, Image, Image)."""
    return node.inputs.get(name) or node.inputs[legacy_index]


def _ensure_light(scene: bpy.types.Scene) -> None:
    if any(obj.type == "LIGHT" for obj in scene.objects):
        return
    light = bpy.data.objects.new("IKOL light", bpy.data.lights.new("IKOL light", "SUN"))
    light.data.energy = 3.0
    light.rotation_euler = (0.9, 0.0, 0.4)
    scene.collection.objects.link(light)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("IKOL world")
    scene.world.color = (0.4, 0.4, 0.4)
