"""The CogVideoX GPU worker: a small FastAPI service that turns one prompt at a time into an MP4.

Layers (cog's http → runner → model split)::

    app.py      HTTP: validate, enqueue, answer (never waits for the GPU)
    jobs.py     the job store, the bounded queue and the single runner thread
    engine.py   loading a CogVideoX checkpoint and running one generation (diffusers)
    video.py    frames → H.264 MP4 with +faststart

Run it with ``python -m worker serve --model-path DIR``.
"""

__version__ = "0.1.0"
