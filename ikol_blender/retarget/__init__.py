"""Retargeting: SMPL motion onto Mixamo, Rigify, the Unreal mannequin, SMPL-X or any armature.

bpy-free (numpy only, tested without Blender): `bonemap` (maps and JSON presets), `transfer`
(rest-pose-aware rotation transfer, root path, leg lengths), `skeleton` (rest skeletons, pose
bases from world rotations), `footlock` (contacts, pins, two-bone leg correction).
bpy-bound: `rig` (reading armatures), `bake` (the `retarget` entry point), `io` (append a
target from a .blend, export FBX or BVH), `properties` (the panel's settings).
See docs/retargeting.md.
"""
