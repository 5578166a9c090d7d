"""storage of the marine VRE."""
