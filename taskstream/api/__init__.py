"""The REST API: the only room that imports litestar."""
