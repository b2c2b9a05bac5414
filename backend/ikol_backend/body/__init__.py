"""Body models (default skeleton, SMPL files) and forward kinematics on the SMPL joint tree."""
