"""Inverse kinematics on the SMPL joint tree: from target joint positions to joint rotations."""
