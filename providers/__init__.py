"""providers of the marine VRE."""
