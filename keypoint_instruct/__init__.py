"""keypoint-instruct: keypoint-integrated instruction data for human pose and action understanding."""

__version__ = "0.1.0"
