"""Frame producers: the Source protocol, OpenCV files/streams/cameras, image folders, picamera2,
and the capture thread that hands the newest frame to the pipeline."""
