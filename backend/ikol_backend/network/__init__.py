"""The IKOL24 network: weights in the authors' checkpoint format, and their loader."""
