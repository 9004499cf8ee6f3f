"""The bundled default model, and converters for the public FaceNet weights (`convert*.py`)."""
