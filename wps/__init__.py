"""wps of the marine VRE."""
