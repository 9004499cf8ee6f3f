"""The face-recognition web service: a JSON API under /api/v1 and a web page at /.

    from facenet import FaceNet
    from facenet.gallery import Gallery
    from facenet.server import Settings, create_app

    model = FaceNet.load("model.keras")
    app = create_app(model, Gallery.open("people.db", model), Settings(api_key="secret"))

Needs the `server` extra (fastapi, uvicorn, python-multipart); `facenet serve` runs it.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
