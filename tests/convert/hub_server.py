"""A stand-in for the Hugging Face Hub: the part of its HTTP protocol that
huggingface_hub 2.4 uses to list, search and download model repositories,
served on 127.0.0.1 so that convert/ is tested without the network.

Endpoints (as the Hub answers them):
- `GET /api/models/{repo}[/revision/{rev}]` (`?blobs=true` adds sizes and LFS
  sha256): `{id, sha, gated, downloads, tags, siblings: [{rfilename, size,
  blobId, lfs: {sha256, size, pointerSize}}]}`.
- `GET /api/models?search=&author=&filter=&sort=downloads&limit=`: a list of
  `{id, modelId, downloads, tags}`; `search` matches the id, every `filter`
  must be a tag.
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag` (the
  sha256 for LFS files, the git blob sha1 for others), `X-Linked-Etag` and
  `X-Linked-Size` for LFS files, `Accept-Ranges`, `Content-Length`; `Range:
  bytes=N-` → 206 with `Content-Range`.
- Errors carry `X-Error-Code`: 404 `RepoNotFound`, `RevisionNotFound`,
  `EntryNotFound` (with `X-Repo-Commit`); a gated repository's files answer
  401 `GatedRepo` without a token and 403 `GatedRepo` with a token that has
  not been granted access.

Faults for tests: `corrupt(repo, file)` serves bytes that do not match the
advertised sha256; `interrupt(repo, file, at=N, times=k)` drops the
connection at byte N for the next k downloads that reach it.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

_LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    downloads: int = 0
    tags: list[str] = field(default_factory=list)
    sha: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.repo_id.encode())
        for name in sorted(self.files):
            digest.update(name.encode() + hashlib.sha256(self.files[name]).digest())
        self.sha = self.sha or digest.hexdigest()

    def is_lfs(self, filename: str) -> bool:
        return filename.endswith(_LFS_SUFFIXES)

    def sha256(self, filename: str) -> str:
        return hashlib.sha256(self.files[filename]).hexdigest()

    def etag(self, filename: str) -> str:
        data = self.files[filename]
        return self.sha256(filename) if self.is_lfs(filename) else git_blob_sha1(data)

    def sibling(self, filename: str, blobs: bool) -> dict:
        entry: dict = {"rfilename": filename}
        if blobs:
            data = self.files[filename]
            entry["size"] = len(data)
            entry["blobId"] = git_blob_sha1(data)
            if self.is_lfs(filename):
                sha256 = self.sha256(filename)
                entry["lfs"] = {"sha256": sha256, "size": len(data), "pointerSize": 134}
        return entry

    def summary(self) -> dict:
        return {
            "_id": self.sha[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "downloads": self.downloads,
            "likes": 0,
            "private": False,
            "gated": "auto" if self.gated else False,
            "tags": self.tags,
            "library_name": "gguf" if "gguf" in self.tags else "transformers",
        }


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.granted_tokens: set[str] = set()
        self._corrupt: set[tuple[str, str]] = set()
        self._interrupts: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll interval: `stop` waits for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        gated: bool = False,
        downloads: int = 0,
        base_model: str | None = None,
        tags: list[str] | None = None,
    ) -> HubRepo:
        """A repository; GGUF repositories get the `gguf` tag, and the
        `base_model:quantized:` tag when they name the model they quantize."""
        all_tags = list(tags or [])
        if any(name.endswith(".gguf") for name in files):
            all_tags.append("gguf")
        if base_model:
            all_tags += [f"base_model:{base_model}", f"base_model:quantized:{base_model}"]
        repo = HubRepo(repo_id, dict(files), gated=gated, downloads=downloads, tags=all_tags)
        self.repos[repo_id] = repo
        return repo

    def corrupt(self, repo_id: str, filename: str) -> None:
        self._corrupt.add((repo_id, filename))

    def interrupt(self, repo_id: str, filename: str, *, at: int, times: int = 1) -> None:
        self._interrupts[(repo_id, filename)] = [at, times]

    def downloads_of(self, filename: str) -> list[Request]:
        """The GET requests for a file's bytes, in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{filename}")]

    def _take_interrupt(self, key: tuple[str, str], start: int, end: int) -> int | None:
        """The byte to stop at, when this download is one to drop."""
        with self._lock:
            fault = self._interrupts.get(key)
            if fault is None or fault[1] <= 0 or not start <= fault[0] < end:
                return None
            fault[1] -= 1
            return fault[0]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest's output clean

        def do_HEAD(self) -> None:
            self._dispatch(body=False)

        def do_GET(self) -> None:
            self._dispatch(body=True)

        # -- routing ---------------------------------------------------------

        def _dispatch(self, body: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            query = parse_qs(url.query)
            hub._record(Request(self.command, path, dict(self.headers.items())))
            if path == "/api/models":
                return self._json(200, self._search(query), body)
            info = re.match(r"^/api/models/([^/]+/[^/]+?)(?:/revision/(.+))?$", path)
            if info:
                return self._model_info(info[1], info[2] or "main", query, body)
            resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if resolve:
                return self._resolve(resolve[1], resolve[2], resolve[3], body)
            return self._error(404, None, "Not found", body)

        # -- API -------------------------------------------------------------

        def _search(self, query: dict[str, list[str]]) -> list[dict]:
            search = query.get("search", [""])[0].lower()
            author = query.get("author", [None])[0]
            filters = query.get("filter", [])
            found = [
                repo
                for repo in hub.repos.values()
                if search in repo.repo_id.lower()
                and (author is None or repo.repo_id.split("/")[0] == author)
                and all(f in repo.tags for f in filters)
            ]
            if query.get("sort", [""])[0] == "downloads":
                found.sort(key=lambda repo: -repo.downloads)
            limit = int(query.get("limit", ["1000"])[0])
            return [repo.summary() for repo in found[:limit]]

        def _model_info(self, repo_id: str, revision: str, query: dict, body: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found", body)
            if revision not in ("main", repo.sha):
                return self._error(404, "RevisionNotFound", "Invalid rev id", body)
            blobs = query.get("blobs", [""])[0].lower() == "true"
            data = repo.summary() | {
                "sha": repo.sha,
                "siblings": [repo.sibling(name, blobs) for name in sorted(repo.files)],
            }
            self._json(200, data, body)

        # -- downloads -------------------------------------------------------

        def _resolve(self, repo_id: str, revision: str, filename: str, body: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found", body)
            if repo.gated:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in hub.granted_tokens:
                    return self._error(
                        403 if token else 401,
                        "GatedRepo",
                        f"Access to model {repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in.",
                        body,
                    )
            if revision not in ("main", repo.sha):
                return self._error(404, "RevisionNotFound", "Invalid rev id", body)
            if filename not in repo.files:
                return self._error(
                    404, "EntryNotFound", "Entry not found", body, {"X-Repo-Commit": repo.sha}
                )
            data = repo.files[filename]
            if (repo_id, filename) in hub._corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": f'"{repo.etag(filename)}"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            if repo.is_lfs(filename):
                headers["X-Linked-Etag"] = f'"{repo.sha256(filename)}"'
                headers["X-Linked-Size"] = str(len(data))
            start, end, status = 0, len(data), 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match:
                start = int(match[1])
                end = min(int(match[2]) + 1, len(data)) if match[2] else len(data)
                if start >= len(data):
                    headers["Content-Range"] = f"bytes */{len(data)}"
                    return self._send(416, headers, b"", body)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            stop = hub._take_interrupt((repo_id, filename), start, end) if body else None
            if stop is None:
                return self._send(status, headers, data[start:end], body)
            # Promise the whole range, send part of it, and hang up.
            self.send_response(status)
            for name, value in (headers | {"Content-Length": str(end - start)}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data[start:stop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        # -- responses -------------------------------------------------------

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _json(self, status: int, value: object, body: bool) -> None:
            data = json.dumps(value).encode()
            self._send(status, {"Content-Type": "application/json"}, data, body)

        def _error(
            self,
            status: int,
            code: str | None,
            message: str,
            body: bool,
            extra: dict[str, str] | None = None,
        ) -> None:
            headers = {"Content-Type": "application/json", "X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            data = json.dumps({"error": message}).encode()
            self._send(status, headers | (extra or {}), data, body)

    return Handler
