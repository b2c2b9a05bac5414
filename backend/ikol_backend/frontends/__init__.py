"""Front ends: find the person in a frame and give SMPL joint targets."""
