"""The request class: uploads parsed into memory, never through a temporary file.

Werkzeug spools a multipart file part larger than 500 KB to a temporary file on disk. A phone
photo is about that size or more, so a large share of uploads cost a write and a read of a
temporary file on the request's path before decoding could start (BENCHMARKS.md, the capacity
plan's notes). Every request's body is bounded by ``MAX_CONTENT_LENGTH``, so keeping its parts in
memory is bounded the same way: at most the upload limit per request being served.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request


class InMemoryUploads(Request):
    """Flask's request, with each uploaded file held in a ``BytesIO``."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()
