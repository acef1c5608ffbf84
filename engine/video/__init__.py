"""Video editing (issue 7): I/O, control maps, attention processors, inversion, LOVECon and
ControlVideo. See docs/video.md."""
