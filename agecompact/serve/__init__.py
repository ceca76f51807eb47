"""``agecompact serve``: an HTTP service around one loaded model (optional extra: ``pip install 'agecompact[serve]'``).

Nothing here imports jax, Starlette or uvicorn at package import; see :mod:`agecompact.serve.app`.
"""
