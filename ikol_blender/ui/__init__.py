"""User interface: the IKOL panel in the 3D Viewport's sidebar."""
