"""Scene writing: everything that creates or changes Blender data."""
