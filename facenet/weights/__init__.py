"""The bundled models (`facenet models` lists them); converters live in `facenet.convert`."""
