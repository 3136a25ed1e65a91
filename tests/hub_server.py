"""A Hugging Face Hub stand-in on 127.0.0.1: the few endpoints huggingface_hub calls to read a
model repository (repo info at a revision, file resolve with HEAD, GET and `Range`), serving
folders on disk, counting every byte it sends per file. Bounded: it serves on the loopback
address only and stops itself after `lifetime` seconds if the test did not stop it first.

Endpoints (as huggingface_hub 2.x calls them):
- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}` (`?blobs=true`): the repo's
  commit `sha`, `private`, and `siblings` (`rfilename`, `size`, `blobId`, `lfs` for weights).
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`, `Content-Length`; a
  `Range: bytes=a-b` GET answers 206 with those bytes only.
A private repo answers 401 `X-Error-Code: RepoNotFound` unless `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")
WHOLE_FILE_LIMIT = 100 * 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    folder: Path
    sha: str
    private: bool = False
    token: str | None = None

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()
        )


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    served: Counter[str] = field(default_factory=Counter)  # "repo/path" -> body bytes sent
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, range
    refused: list[str] = field(default_factory=list)
    commits: list[dict[str, object]] = field(default_factory=list)  # what create_commit sent
    lifetime: float = 300.0

    def add(self, repo_id: str, folder: Path, *, private: bool = False, token: str | None = None):
        sha = hashlib.sha1(repo_id.encode()).hexdigest()
        self.repos[repo_id] = Repo(folder, sha, private, token)
        return self.repos[repo_id]

    def weight_bytes(self, repo_id: str) -> int:
        prefix = f"{repo_id}/"
        return sum(
            n for k, n in self.served.items() if k.startswith(prefix) and k.endswith(LFS_SUFFIXES)
        )

    def small_file_bytes(self, repo_id: str) -> int:
        prefix = f"{repo_id}/"
        return sum(
            n
            for k, n in self.served.items()
            if k.startswith(prefix) and not k.endswith(LFS_SUFFIXES)
        )

    # ------------------------------------------------------------------ server
    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_POST(self) -> None:
                hub._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)  # never outlives a stuck test
        self._timer.daemon = True
        self._timer.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ writes
    def _json(self, handler: BaseHTTPRequestHandler, data: object) -> None:
        body = json.dumps(data).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        """`preupload` (every file is a regular git blob) and `commit` (NDJSON; create_pr)."""
        split = urlsplit(handler.path)
        path = unquote(split.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.requests.append(("POST", path, None))
        match = re.match(r"^/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)$", path)
        if match is None:
            return self._error(handler, 404, "EntryNotFound", f"no route {path}")
        repo_id, action, rev = match.groups()
        repo = self._repo(handler, repo_id, rev)
        if repo is None:
            return None
        token = handler.headers.get("Authorization", "")
        if not token.startswith("Bearer ") or (repo.token and token != f"Bearer {repo.token}"):
            return self._error(handler, 401, "Unauthorized", "Invalid credentials in header")
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._json(
                handler,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                },
            )
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        files = {
            x["value"]["path"]: base64.b64decode(x["value"]["content"])
            for x in lines
            if x["key"] == "file"
        }
        self.commits.append(
            {"repo": repo_id, "query": split.query, "header": header, "files": files}
        )
        oid = hashlib.sha1(repr(len(self.commits)).encode()).hexdigest()
        root = f"http://127.0.0.1:{self._server.server_address[1]}/{repo_id}"
        return self._json(
            handler,
            {
                "commitUrl": f"{root}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": f"{root}/discussions/{len(self.commits)}",
            },
        )

    # ---------------------------------------------------------------- handlers
    def _authorized(self, repo: Repo, handler: BaseHTTPRequestHandler) -> bool:
        if not repo.private:
            return True
        return handler.headers.get("Authorization") == f"Bearer {repo.token}"

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, msg: str) -> None:
        body = json.dumps({"error": msg}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", msg)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append((handler.command, path, handler.headers.get("Range")))
        info = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
        if info:
            return self._info(handler, info.group(1), info.group(2))
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if resolve:
            return self._resolve(handler, *resolve.groups(), head=head)
        return self._error(handler, 404, "EntryNotFound", f"no route {path}")

    def _repo(self, handler: BaseHTTPRequestHandler, repo_id: str, rev: str | None) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None or not self._authorized(repo, handler):
            self._error(handler, 401, "RepoNotFound", "Repository not found")
            return None
        if rev not in (None, "main", repo.sha):
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _info(self, handler: BaseHTTPRequestHandler, repo_id: str, rev: str | None) -> None:
        repo = self._repo(handler, repo_id, rev)
        if repo is None:
            return
        siblings = []
        for rel in repo.files():
            file = repo.folder / rel
            size = file.stat().st_size
            entry: dict[str, object] = {"rfilename": rel, "size": size}
            if rel.endswith(LFS_SUFFIXES):
                # Hashing gigabytes of holes would be pointless here: a stand-in oid.
                oid = hashlib.sha256(f"{repo_id}/{rel}/{size}".encode()).hexdigest()
                entry["blobId"] = hashlib.sha1(oid.encode()).hexdigest()
                entry["lfs"] = {"size": size, "sha256": oid, "pointerSize": 134}
            else:
                entry["blobId"] = git_blob_sha1(file.read_bytes())
            siblings.append(entry)
        body = json.dumps(
            {
                "_id": repo.sha[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.sha,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "siblings": siblings,
            }
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _resolve(
        self, handler: BaseHTTPRequestHandler, repo_id: str, rev: str, rel: str, *, head: bool
    ) -> None:
        repo = self._repo(handler, repo_id, rev)
        if repo is None:
            return
        file = repo.folder / rel
        if ".." in Path(rel).parts or not file.is_file():
            return self._error(handler, 404, "EntryNotFound", f"{rel} not found")
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        wanted = handler.headers.get("Range")
        if not wanted and not head and rel.endswith(LFS_SUFFIXES) and size > WHOLE_FILE_LIMIT:
            self.refused.append(rel)  # a client downloading a whole weight file: fail fast
            return self._error(handler, 403, "TooLarge", f"{rel}: whole weight file refused")
        if wanted and not head:
            match = _RANGE.match(wanted)
            if match is None:
                return self._error(handler, 416, "BadRange", wanted)
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            status = 206
        if rel.endswith(LFS_SUFFIXES):
            etag = hashlib.sha256(f"{repo_id}/{rel}/{size}".encode()).hexdigest()
        else:
            etag = git_blob_sha1(file.read_bytes())
        handler.send_response(status)
        handler.send_header("X-Repo-Commit", repo.sha)
        handler.send_header("ETag", f'"{etag}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if head:
            return
        with file.open("rb") as source:
            source.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = source.read(min(left, 1 << 20))
                if not chunk:
                    break
                handler.wfile.write(chunk)
                left -= len(chunk)
                self.served[f"{repo_id}/{rel}"] += len(chunk)
