"""A stand-in GitHub REST API for tests: a real HTTP server on 127.0.0.1.

Every request is routed to an operation of GitHub's official OpenAPI description (the subset
vendored in ``tests/fixtures/github/rest-api-subset.json``); path and query parameters and
JSON bodies are validated against that operation's schemas, and every response the stub sends
is itself validated against the documented response schema. Anything wrong -- a body GitHub
would reject, an unknown route, bad credentials, or a response of the stub's own that breaks
the schema -- is answered the way GitHub answers it and recorded in ``stub.violations``, so a
test that drives a client through the stub ends with ``assert stub.violations == []``.

Only the eleven operations of the subset exist: issue comments (create, update, list, get,
delete), check runs (create, update, get, list-for-ref), pulls/get and users/get-authenticated.

Also here: ``make_pull_request_event`` builds a complete ``pull_request`` webhook payload that
validates against the vendored webhook schema (``validate_event``).

Usage::

    with GitHubStub() as stub:
        stub.add_pull(7, head_sha="a" * 40, base_sha="b" * 40)
        gh = github.Github(auth=github.Auth.Token(stub.token), base_url=stub.url, retry=None)
        ...
        assert stub.violations == []
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as _dt
import functools
import http.server
import json
import re
import secrets
import socket
import threading
import time
import traceback
import urllib.parse
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github"
REST_SUBSET = FIXTURES / "rest-api-subset.json"
WEBHOOK_SUBSET = FIXTURES / "webhook-pull-request-subset.json"

DOCS = "https://docs.github.com/rest"
MAX_COMMENT_BODY = 65536  # GitHub: "body is too long (maximum is 65536 characters)"
MAX_OUTPUT_TEXT = 65535  # check-run output.summary / output.text
MAX_ANNOTATIONS_PER_REQUEST = 50
NOT_ACCESSIBLE = "Resource not accessible by integration"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID "
    "C0DE:1234:5678:9ABC:DEF0."
)

# --------------------------------------------------------------------------------------------
# Schemas


@functools.cache
def rest_spec() -> dict:
    """The vendored REST subset (operations by operationId)."""
    return json.loads(REST_SUBSET.read_text(encoding="utf-8"))


@functools.cache
def webhook_spec() -> dict:
    return json.loads(WEBHOOK_SUBSET.read_text(encoding="utf-8"))


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    _dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if any(c.isspace() for c in value):
        return False
    parts = urllib.parse.urlsplit(value)
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme or "")) and bool(
        parts.netloc or parts.path
    )


def format_checker() -> jsonschema.FormatChecker:
    """jsonschema's format checker with 'date-time' and 'uri' always checked.

    jsonschema only checks those two when optional packages (rfc3339-validator, rfc3987) are
    installed; the stub must behave the same on every machine, so it brings its own.
    """
    fc = jsonschema.FormatChecker()
    fc.checks("date-time", raises=ValueError)(_is_date_time)
    fc.checks("uri", raises=ValueError)(_is_uri)
    return fc


_FORMAT_CHECKER = format_checker()
_VALIDATORS: dict[tuple, jsonschema.Draft202012Validator] = {}
_VALIDATORS_LOCK = threading.Lock()


def _validator(key: tuple, schema: dict) -> jsonschema.Draft202012Validator:
    with _VALIDATORS_LOCK:
        v = _VALIDATORS.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)
            _VALIDATORS[key] = v
        return v


def _short(x: object, n: int = 200) -> str:
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def schema_errors(key: tuple, schema: dict | None, instance: object) -> list[str]:
    """Human-readable errors of ``instance`` against ``schema`` ('' path = the root)."""
    if schema is None:
        return []
    out = []
    for e in sorted(_validator(key, schema).iter_errors(instance), key=lambda e: list(e.path)):
        where = "/" + "/".join(str(p) for p in e.absolute_path)
        msg = e.message
        if e.validator in ("maxItems", "minItems") and isinstance(e.instance, list):
            msg = f"has {len(e.instance)} items; {e.validator} is {e.validator_value}"
        elif e.validator in ("maxLength", "minLength") and isinstance(e.instance, str):
            msg = f"has {len(e.instance)} characters; {e.validator} is {e.validator_value}"
        elif e.validator in ("anyOf", "oneOf") and e.context:
            why = sorted({c.message for c in e.context})
            msg = f"matches none of the {e.validator} alternatives: " + _short("; ".join(why), 300)
        elif len(msg) > 300:  # messages quote the instance, which may be huge
            msg = (f"{e.validator} {_short(e.validator_value, 80)} failed on "
                   f"{_short(e.instance, 80)}")
        out.append(f"{where}: {msg}")
    return out


def validate_event(event: dict, action: str | None = None) -> list[str]:
    """Errors of a ``pull_request`` webhook payload against the vendored schema for ``action``
    (default: ``event["action"]``). Empty list: valid."""
    action = action or event.get("action")
    key = f"webhook-pull-request-{action}"
    schema = webhook_spec()["events"].get(key)
    if schema is None:
        return [f"no vendored webhook schema {key!r}"]
    return schema_errors(("webhook", key), schema, event)


# --------------------------------------------------------------------------------------------
# Object builders (shared by the stub and the event builder)

_KNOWN_IDS = {"octocat": 583231, "github": 9919, "github-actions[bot]": 41898282}
GITHUB_ACTIONS_APP_ID = 15368


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _uid(login: str) -> int:
    return _KNOWN_IDS.get(login, 1_000_000 + zlib.crc32(login.encode()) % 90_000_000)


def _node_id(kind: str, n: int) -> str:
    return base64.b64encode(f"{len(kind):02d}:{kind}{n}".encode()).decode()


def simple_user(api: str, login: str, *, user_type: str = "User") -> dict:
    """A complete simple-user object (``user_type``: User, Bot or Organization)."""
    uid = _uid(login)
    u = f"{api}/users/{urllib.parse.quote(login)}"
    is_bot = user_type == "Bot"
    return {
        "login": login,
        "id": uid,
        "node_id": _node_id("Bot" if is_bot else user_type, uid),
        "avatar_url": (
            f"https://avatars.githubusercontent.com/in/{GITHUB_ACTIONS_APP_ID}?v=4"
            if login == "github-actions[bot]"
            else f"https://avatars.githubusercontent.com/u/{uid}?v=4"
        ),
        "gravatar_id": "",
        "url": u,
        "html_url": (
            f"https://github.com/apps/{login[: -len('[bot]')]}"
            if is_bot and login.endswith("[bot]")
            else f"https://github.com/{urllib.parse.quote(login)}"
        ),
        "followers_url": f"{u}/followers",
        "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}",
        "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions",
        "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos",
        "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events",
        "type": user_type,
        "user_view_type": "public",
        "site_admin": False,
    }


def private_user(api: str, login: str) -> dict:
    """The authenticated user as GET /user returns it for a PAT (the 'Private User' schema)."""
    u = simple_user(api, login)
    u.update(
        name=login.capitalize(), company=None, blog="", location=None, email=None,
        hireable=None, bio=None, twitter_username=None, notification_email=None,
        public_repos=3, public_gists=0, followers=1, following=0,
        created_at="2015-03-02T10:00:00Z", updated_at="2024-05-01T12:00:00Z",
        private_gists=0, total_private_repos=1, owned_private_repos=1, disk_usage=1024,
        collaborators=0, two_factor_authentication=True,
        plan={"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
    )
    return u


def github_actions_app(api: str) -> dict:
    """The 'GitHub Actions' app (integration) that owns check runs created with GITHUB_TOKEN."""
    return {
        "id": GITHUB_ACTIONS_APP_ID,
        "slug": "github-actions",
        "client_id": "Iv1.05c79e9ad1f6bdfa",
        "node_id": "MDM6QXBwMTUzNjg=",
        "owner": simple_user(api, "github", user_type="Organization"),
        "name": "GitHub Actions",
        "description": "Automate your workflow from idea to production",
        "external_url": "https://help.github.com/en/actions",
        "html_url": "https://github.com/apps/github-actions",
        "created_at": "2018-07-30T09:30:17Z",
        "updated_at": "2024-04-10T20:33:16Z",
        "permissions": {"actions": "write", "checks": "write", "contents": "write",
                        "deployments": "write", "issues": "write", "metadata": "read",
                        "pull_requests": "write", "statuses": "write"},
        "events": ["check_run", "check_suite", "pull_request", "push", "workflow_run"],
    }


def repository(api: str, owner: str, name: str, *, fork: bool = False,
               owner_type: str = "Organization", private: bool = False) -> dict:
    """A complete repository object, valid both for the REST 'Repository' schema (pull
    request head/base) and for the webhook 'repository' schemas."""
    full = f"{owner}/{name}"
    rid = 100_000_000 + zlib.crc32(full.encode()) % 800_000_000
    u = f"{api}/repos/{full}"
    return {
        "id": rid,
        "node_id": _node_id("Repository", rid),
        "name": name,
        "full_name": full,
        "private": private,
        "owner": simple_user(api, owner, user_type=owner_type),
        "html_url": f"https://github.com/{full}",
        "description": "LoRA adapters" if not fork else "Fork of LoRA adapters",
        "fork": fork,
        "url": u,
        "archive_url": f"{u}/{{archive_format}}{{/ref}}",
        "assignees_url": f"{u}/assignees{{/user}}",
        "blobs_url": f"{u}/git/blobs{{/sha}}",
        "branches_url": f"{u}/branches{{/branch}}",
        "collaborators_url": f"{u}/collaborators{{/collaborator}}",
        "comments_url": f"{u}/comments{{/number}}",
        "commits_url": f"{u}/commits{{/sha}}",
        "compare_url": f"{u}/compare/{{base}}...{{head}}",
        "contents_url": f"{u}/contents/{{+path}}",
        "contributors_url": f"{u}/contributors",
        "deployments_url": f"{u}/deployments",
        "downloads_url": f"{u}/downloads",
        "events_url": f"{u}/events",
        "forks_url": f"{u}/forks",
        "git_commits_url": f"{u}/git/commits{{/sha}}",
        "git_refs_url": f"{u}/git/refs{{/sha}}",
        "git_tags_url": f"{u}/git/tags{{/sha}}",
        "git_url": f"git://github.com/{full}.git",
        "issue_comment_url": f"{u}/issues/comments{{/number}}",
        "issue_events_url": f"{u}/issues/events{{/number}}",
        "issues_url": f"{u}/issues{{/number}}",
        "keys_url": f"{u}/keys{{/key_id}}",
        "labels_url": f"{u}/labels{{/name}}",
        "languages_url": f"{u}/languages",
        "merges_url": f"{u}/merges",
        "milestones_url": f"{u}/milestones{{/number}}",
        "notifications_url": f"{u}/notifications{{?since,all,participating}}",
        "pulls_url": f"{u}/pulls{{/number}}",
        "releases_url": f"{u}/releases{{/id}}",
        "ssh_url": f"git@github.com:{full}.git",
        "stargazers_url": f"{u}/stargazers",
        "statuses_url": f"{u}/statuses/{{sha}}",
        "subscribers_url": f"{u}/subscribers",
        "subscription_url": f"{u}/subscription",
        "tags_url": f"{u}/tags",
        "teams_url": f"{u}/teams",
        "trees_url": f"{u}/git/trees{{/sha}}",
        "clone_url": f"https://github.com/{full}.git",
        "mirror_url": None,
        "hooks_url": f"{u}/hooks",
        "svn_url": f"https://github.com/{full}",
        "homepage": None,
        "language": "Python",
        "forks_count": 0 if fork else 1,
        "forks": 0 if fork else 1,
        "stargazers_count": 4,
        "watchers_count": 4,
        "watchers": 4,
        "size": 2048,
        "default_branch": "main",
        "open_issues_count": 2,
        "open_issues": 2,
        "is_template": False,
        "topics": [],
        "has_issues": not fork,
        "has_projects": True,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private" if private else "public",
        "pushed_at": "2024-05-01T11:58:00Z",
        "created_at": "2023-01-10T09:00:00Z",
        "updated_at": "2024-05-01T11:58:05Z",
        "allow_forking": True,
        "web_commit_signoff_required": False,
        "license": None,
    }


def pull_request(api: str, *, owner: str, repo: str, number: int, head_sha: str,
                 base_sha: str, head_repo_full_name: str | None = None,
                 head_ref: str = "adapter-update", base_ref: str = "main",
                 author: str = "octocat", title: str | None = None) -> dict:
    """A complete pull-request object as pulls/get returns it. ``head_repo_full_name`` other
    than ``owner/repo``: the head lives in a fork (head.repo.fork true)."""
    base_full = f"{owner}/{repo}"
    head_full = head_repo_full_name or base_full
    fork = head_full.lower() != base_full.lower()
    head_owner, head_name = head_full.split("/", 1)
    base_repo = repository(api, owner, repo)
    head_repo = (repository(api, head_owner, head_name, fork=True, owner_type="User")
                 if fork else copy.deepcopy(base_repo))
    user = simple_user(api, author)
    pid = 1_500_000_000 + zlib.crc32(f"{base_full}#{number}".encode()) % 400_000_000
    u = f"{api}/repos/{base_full}"
    html = f"https://github.com/{base_full}/pull/{number}"
    return {
        "url": f"{u}/pulls/{number}",
        "id": pid,
        "node_id": _node_id("PullRequest", pid),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{u}/issues/{number}",
        "commits_url": f"{u}/pulls/{number}/commits",
        "review_comments_url": f"{u}/pulls/{number}/comments",
        "review_comment_url": f"{u}/pulls/comments{{/number}}",
        "comments_url": f"{u}/issues/{number}/comments",
        "statuses_url": f"{u}/statuses/{head_sha}",
        "number": number,
        "state": "open",
        "locked": False,
        "title": title or f"Promote adapter candidate (#{number})",
        "user": user,
        "body": "Retrained tenant adapters.",
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:05:00Z",
        "closed_at": None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": {"label": f"{head_owner}:{head_ref}", "ref": head_ref, "sha": head_sha,
                 "user": copy.deepcopy(head_repo["owner"]), "repo": head_repo},
        "base": {"label": f"{owner}:{base_ref}", "ref": base_ref, "sha": base_sha,
                 "user": copy.deepcopy(base_repo["owner"]), "repo": base_repo},
        "_links": {
            "self": {"href": f"{u}/pulls/{number}"},
            "html": {"href": html},
            "issue": {"href": f"{u}/issues/{number}"},
            "comments": {"href": f"{u}/issues/{number}/comments"},
            "review_comments": {"href": f"{u}/pulls/{number}/comments"},
            "review_comment": {"href": f"{u}/pulls/comments{{/number}}"},
            "commits": {"href": f"{u}/pulls/{number}/commits"},
            "statuses": {"href": f"{u}/statuses/{head_sha}"},
        },
        "author_association": "CONTRIBUTOR" if fork else "MEMBER",
        "auto_merge": None,
        "draft": False,
        "merged": False,
        "mergeable": True,
        "rebaseable": True,
        "mergeable_state": "clean",
        "merged_by": None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": fork,
        "commits": 1,
        "additions": 12,
        "deletions": 3,
        "changed_files": 2,
    }


def make_pull_request_event(*, owner: str, repo: str, number: int, head_sha: str,
                            base_sha: str, action: str = "synchronize", fork: bool = False,
                            sender: str = "octocat", before: str | None = None,
                            api_url: str = "https://api.github.com") -> dict:
    """A complete ``pull_request`` webhook payload (as in $GITHUB_EVENT_PATH) valid against the
    vendored schema for ``action`` (opened, synchronize or reopened). ``fork=True``: the head is
    ``{sender}/{repo}``, a fork (pull_request.head.repo.fork true). ``before`` (synchronize
    only): the previous head sha (default: a made-up one)."""
    if action not in ("opened", "synchronize", "reopened"):
        raise ValueError(f"no vendored webhook schema for action {action!r}")
    head_full = f"{sender}/{repo}" if fork else None
    if fork and sender.lower() == owner.lower():
        raise ValueError("a fork needs a sender other than the base owner")
    pr = pull_request(api_url, owner=owner, repo=repo, number=number, head_sha=head_sha,
                      base_sha=base_sha, head_repo_full_name=head_full, author=sender)
    for side in ("head", "base"):
        r = pr[side]["repo"]
        # webhook repository objects carry a few more fields than the REST ones
        r.update(allow_auto_merge=False, allow_merge_commit=True, allow_rebase_merge=True,
                 allow_squash_merge=True, allow_update_branch=False,
                 delete_branch_on_merge=False, use_squash_pr_title_as_default=False,
                 merge_commit_message="PR_TITLE", merge_commit_title="MERGE_MESSAGE",
                 squash_merge_commit_message="COMMIT_MESSAGES",
                 squash_merge_commit_title="COMMIT_OR_PR_TITLE")
    pr.update(allow_auto_merge=False, allow_update_branch=False, delete_branch_on_merge=False,
              merge_commit_message="PR_TITLE", merge_commit_title="MERGE_MESSAGE",
              squash_merge_commit_message="COMMIT_MESSAGES",
              squash_merge_commit_title="COMMIT_OR_PR_TITLE",
              use_squash_pr_title_as_default=False)
    if action == "opened":
        pr["updated_at"] = pr["created_at"]
    repository_obj = copy.deepcopy(pr["base"]["repo"])
    repository_obj.update(custom_properties={})
    event = {
        "action": action,
        "number": number,
        "pull_request": pr,
        "repository": repository_obj,
        "organization": _organization(api_url, owner),
        "sender": simple_user(api_url, sender),
    }
    if action == "synchronize":
        event["before"] = before or f"{zlib.crc32(head_sha.encode()):08x}" * 5
        event["after"] = head_sha
    return event


def _organization(api: str, login: str) -> dict:
    oid = _uid(login)
    u = f"{api}/orgs/{login}"
    return {
        "login": login,
        "id": oid,
        "node_id": _node_id("Organization", oid),
        "url": u,
        "repos_url": f"{u}/repos",
        "events_url": f"{u}/events",
        "hooks_url": f"{u}/hooks",
        "issues_url": f"{u}/issues",
        "members_url": f"{u}/members{{/member}}",
        "public_members_url": f"{u}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{oid}?v=4",
        "description": None,
    }


# --------------------------------------------------------------------------------------------
# The server


class _HeaderDict(dict):
    """dict of request headers with case-insensitive lookups."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in items:
            super().__setitem__(k, v)

    def _find(self, key):
        for k in self.keys():
            if k.lower() == str(key).lower():
                return k
        raise KeyError(key)

    def __getitem__(self, key):
        return super().__getitem__(self._find(key))

    def __contains__(self, key):
        try:
            self._find(key)
            return True
        except KeyError:
            return False

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class Recorded:
    """One request the stub received. ``path`` is as sent (prefix included, query string not);
    ``query``: one value per name (the last one); ``body``: the parsed JSON body or None."""

    method: str
    path: str
    query: dict
    headers: dict
    body: Any
    status: int = 0
    operation_id: str | None = None
    raw_body: bytes = b""


@dataclass
class _Failure:
    remaining: int
    status: int
    method: str | None
    path_regex: re.Pattern | None
    headers: dict
    body: Any


@dataclass
class _Reply:
    status: int
    body: Any = None  # dict/list -> JSON; bytes/str -> sent as is; None -> no body
    headers: dict = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, status: int, body: dict, *, violation: str | None = None,
                 headers: dict | None = None):
        super().__init__(body.get("message"))
        self.reply = _Reply(status, body, headers or {})
        self.violation = violation


def _error(status: int, message: str, op: dict | None = None, **extra) -> dict:
    body = {"message": message,
            "documentation_url": (op or {}).get("docs") or DOCS}
    body.update(extra)
    body.setdefault("status", str(status))
    return body


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "GitHub.com"
    sys_version = ""

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def setup(self):
        super().setup()
        with self.server.stub.lock:
            self.server.stub._connections.add(self.connection)

    def finish(self):
        with self.server.stub.lock:
            self.server.stub._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self):
        self.server.stub._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


_WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


class GitHubStub:
    """See the module docstring. State (``comments``, ``check_runs``, ``requests``, ...) may be
    read by tests at any time; take ``stub.lock`` when reading while requests are in flight."""

    def __init__(self, *, owner: str = "acme", repo: str = "adapters",
                 token: str = "ghs_testtoken", prefix: str = "",
                 token_login: str | None = None, bot_login: str = "github-actions[bot]",
                 read_only: bool = False, per_page_max: int = 100,
                 checks_need_app: bool = True, timeout: float = 10.0):
        """``token_login`` None: the token is a GITHUB_TOKEN (GET /user answers 403, writes are
        authored by ``bot_login``, a Bot). A login: the token is that user's PAT (GET /user
        answers the user); then, when ``checks_need_app`` (GitHub's rule: only GitHub Apps may
        write check runs), check-run create/update answer 403 "You must authenticate via a
        GitHub App.". ``read_only``: every write answers 403 "Resource not accessible by
        integration" (a fork PR's GITHUB_TOKEN). ``timeout``: socket timeout of each
        connection, seconds."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must look like '/api/v3'")
        self.owner, self.repo, self.token, self.prefix = owner, repo, token, prefix
        self.token_login, self.bot_login = token_login, bot_login
        self.read_only, self.per_page_max = read_only, per_page_max
        self.checks_need_app, self.timeout = checks_need_app, timeout
        self.lock = threading.RLock()
        self.comments: dict[int, dict] = {}
        self.check_runs: dict[int, dict] = {}
        self.pulls: dict[int, dict] = {}
        self.annotation_batches: list[int] = []
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._failures: list[_Failure] = []
        self._next_comment_id = 2_000_000_001
        self._next_check_run_id = 24_000_000_001
        self._next_check_suite_id = 22_000_000_001
        self._rate_used = 0
        self._rate_reset = int(time.time()) + 3600
        self._connections: set = set()
        self._thread: threading.Thread | None = None
        self._routes = self._compile_routes()
        # bound now, so that ``url`` is known (and objects can be seeded) before start()
        handler = type("_StubHandler", (_Handler,), {"timeout": timeout})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.stub = self
        self._server.timeout = timeout
        self._stopped = False
        self.port: int = self._server.server_address[1]
        self.url: str = f"http://127.0.0.1:{self.port}{prefix}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GitHubStub:
        """Serve from a daemon thread. A stopped stub cannot be started again."""
        if self._stopped:
            raise RuntimeError("this GitHubStub was stopped; make a new one")
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.01},
                                            name=f"github-stub-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        server = self._server
        if self._thread is not None:
            server.shutdown()
        server.server_close()
        with self.lock:  # wake handler threads parked on idle keep-alive connections
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(self.timeout)

    def __del__(self):
        with contextlib.suppress(Exception):
            if not self._stopped:
                self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ seeding & control

    @property
    def api(self) -> str:
        """Base of the URLs in responses (== ``url``)."""
        return self.url

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def add_pull(self, number: int, *, head_sha: str, base_sha: str,
                 head_repo_full_name: str | None = None, head_ref: str = "adapter-update",
                 base_ref: str = "main", author: str = "octocat") -> dict:
        """Register pull request ``number`` (served by pulls/get); returns the object served.
        ``head_repo_full_name`` other than owner/repo: a PR from that fork."""
        pr = pull_request(self.api, owner=self.owner, repo=self.repo, number=number,
                          head_sha=head_sha, base_sha=base_sha,
                          head_repo_full_name=head_repo_full_name, head_ref=head_ref,
                          base_ref=base_ref, author=author)
        self._check_own("pulls/get", "200", pr)
        with self.lock:
            self.pulls[number] = pr
        return copy.deepcopy(pr)

    def add_comment(self, issue_number: int, body: str, *, login: str = "someone",
                    user_type: str = "User") -> dict:
        """Seed an issue comment by another author; returns the stored object."""
        with self.lock:
            c = self._new_comment(issue_number, body, simple_user(self.api, login,
                                                                 user_type=user_type), "NONE")
        return copy.deepcopy(c)

    def fail_next(self, n: int = 1, status: int = 502, *, method: str | None = None,
                  path_regex: str | None = None, headers: dict | None = None,
                  body: Any = None) -> None:
        """The next ``n`` requests matching ``method`` (any if None) and ``path_regex``
        (``re.search`` on the path with the prefix stripped; any if None) get this response,
        before routing or auth. ``body`` None: a realistic default for ``status`` (5xx: an
        HTML page; 403 and 429: GitHub's secondary-rate-limit JSON with Retry-After: 1;
        other: {"message": ...}). A dict/list body is sent as JSON, str/bytes as is."""
        hdrs: dict = {}
        if body is None:
            if status >= 500:
                try:
                    reason = http.HTTPStatus(status).phrase
                except ValueError:
                    reason = "Error"
                body = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx"
                        f"</center>\r\n</body>\r\n</html>\r\n")
                hdrs["Content-Type"] = "text/html"
            elif status in (403, 429):
                body = {"message": SECONDARY_RATE_LIMIT,
                        "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/"
                        "using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"}
                hdrs["Retry-After"] = "1"
            else:
                try:
                    body = _error(status, http.HTTPStatus(status).phrase)
                except ValueError:
                    body = _error(status, "Error")
        elif isinstance(body, str):
            hdrs["Content-Type"] = "text/html"
        hdrs.update(headers or {})
        with self.lock:
            self._failures.append(_Failure(n, status, method.upper() if method else None,
                                           re.compile(path_regex) if path_regex else None,
                                           hdrs, body))

    def comments_on(self, issue_number: int) -> list[dict]:
        """Stored comments of one issue/PR, by ascending id."""
        with self.lock:
            return [copy.deepcopy(c) for _, c in sorted(self.comments.items())
                    if c["issue_url"].endswith(f"/issues/{issue_number}")]

    # ------------------------------------------------------------------ routing

    def _compile_routes(self):
        routes = []
        for op_id, op in rest_spec()["operations"].items():
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(op["path"]))
            literal = len(re.sub(r"\{\w+\}", "", op["path"]))
            routes.append((literal, op_id, op["method"], re.compile(f"^{pattern}$")))
        routes.sort(key=lambda r: -r[0])  # literal segments win over parameters
        return routes

    def _route(self, method: str, path: str):
        """(op_id, op, path_params) or (None, None, None); wrong method on a known path gives
        (None, 'method', None)."""
        path_hit = False
        for _, op_id, m, rx in self._routes:
            mo = rx.match(path)
            if mo:
                if m == method:
                    params = {k: urllib.parse.unquote(v) for k, v in mo.groupdict().items()}
                    return op_id, rest_spec()["operations"][op_id], params
                path_hit = True
        return None, ("method" if path_hit else None), None

    def _strip_prefix(self, path: str) -> str | None:
        if not self.prefix:
            return path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return path[len(self.prefix):] or "/"
        return None

    # ------------------------------------------------------------------ HTTP plumbing

    def _read_body(self, h) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _handle(self, h) -> None:
        split = urllib.parse.urlsplit(h.path)
        raw_query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        rec = Recorded(method=h.command, path=split.path,
                       query={k: v[-1] for k, v in raw_query.items()},
                       headers=_HeaderDict(h.headers.items()), body=None)
        try:
            rec.raw_body = self._read_body(h)
        except (OSError, ValueError) as e:
            self._violate(f"{h.command} {split.path}: unreadable body ({e})")
            h.close_connection = True
            return
        if rec.raw_body.strip():
            try:
                rec.body = json.loads(rec.raw_body)
            except ValueError:
                pass
        with self.lock:
            self.requests.append(rec)
        try:
            reply = self._dispatch(rec, raw_query)
        except Exception:  # noqa: BLE001 - a bug in the stub: say so loudly, answer 500
            self._violate(f"stub error on {rec.method} {rec.path}:\n{traceback.format_exc()}")
            reply = _Reply(500, _error(500, "stub error"))
        rec.status = reply.status
        self._send(h, reply)

    def _rate_headers(self) -> dict:
        with self.lock:
            self._rate_used += 1
            limit = 5000 if self.token_login else 1000
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(0, limit - self._rate_used)),
                "X-RateLimit-Reset": str(self._rate_reset),
                "X-RateLimit-Used": str(self._rate_used),
                "X-RateLimit-Resource": "core",
            }

    def _send(self, h, reply: _Reply) -> None:
        headers = {
            "Date": h.date_time_string(),
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Request-Id": ":".join(secrets.token_hex(n).upper() for n in (2, 3, 4, 4, 4)),
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "X-Content-Type-Options": "nosniff",
            **self._rate_headers(),
        }
        headers.update(reply.headers)
        if isinstance(reply.body, (dict, list)):
            payload = json.dumps(reply.body, separators=(",", ":")).encode()
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        elif isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = b""
        try:
            h.send_response(reply.status)
            for k, v in headers.items():
                if reply.status == 204 and k == "Content-Type":
                    continue
                h.send_header(k, v)
            if reply.status != 204 and reply.status != 304:
                h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            if payload and h.command != "HEAD" and reply.status not in (204, 304):
                h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    # ------------------------------------------------------------------ checks and dispatch

    def _violate(self, msg: str) -> None:
        with self.lock:
            self.violations.append(msg)

    def _check_own(self, op_id: str, status: str, body: Any) -> None:
        """Validate a body the stub is about to send; a failure is a bug in the stub."""
        resp = rest_spec()["operations"][op_id]["responses"].get(status)
        if resp is None or resp.get("json_schema") is None:
            return
        errs = schema_errors(("resp", op_id, status), resp["json_schema"], body)
        if errs:
            self._violate(f"stub bug: {op_id} {status} response breaks its schema: "
                          + "; ".join(errs[:5]))

    def _take_failure(self, method: str, route_path: str) -> _Failure | None:
        with self.lock:
            for f in self._failures:
                if f.method and f.method != method:
                    continue
                if f.path_regex and not f.path_regex.search(route_path):
                    continue
                f.remaining -= 1
                if f.remaining <= 0:
                    self._failures.remove(f)
                return f
        return None

    def _dispatch(self, rec: Recorded, raw_query: dict) -> _Reply:
        method = rec.method
        route_path = self._strip_prefix(rec.path)
        op_id = op = params = None
        if route_path is not None:
            op_id, op, params = self._route(method, route_path)
            if not isinstance(op, dict):
                op_id = op = None
        rec.operation_id = op_id
        fail = self._take_failure(method, route_path if route_path is not None else rec.path)
        if fail is not None:
            return _Reply(fail.status, fail.body, dict(fail.headers))
        try:
            return self._serve(rec, raw_query, route_path, op_id, op, params)
        except _ApiError as e:
            if e.violation:
                self._violate(e.violation)
            if op_id and e.reply.body is not None:
                self._check_own(op_id, str(e.reply.status), e.reply.body)
            return e.reply

    def _serve(self, rec, raw_query, route_path, op_id, op, params) -> _Reply:
        method, where = rec.method, f"{rec.method} {rec.path}"
        # authentication comes first, as on GitHub
        auth = rec.headers.get("Authorization")
        if auth is None:
            raise _ApiError(401, _error(401, "Requires authentication", op),
                            violation=f"{where}: no Authorization header")
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or tok.strip() != self.token:
            raise _ApiError(401, _error(401, "Bad credentials", op),
                            violation=f"{where}: bad credentials ({scheme} ...)")
        if op is None:
            why = "wrong method for" if route_path is not None and self._route(
                method, route_path)[1] == "method" else "unknown route"
            if route_path is None:
                why = f"path outside the prefix {self.prefix!r}"
            raise _ApiError(404, _error(404, "Not Found"), violation=f"{where}: {why}")
        if "owner" in params and (params["owner"].lower(), params["repo"].lower()) != (
                self.owner.lower(), self.repo.lower()):
            raise _ApiError(404, _error(404, "Not Found", op),
                            violation=f"{where}: repository {params['owner']}/{params['repo']}"
                                      f" is not the stub's {self.full_name}")
        if self.read_only and method in _WRITE_METHODS:
            raise _ApiError(403, _error(403, NOT_ACCESSIBLE, op))
        if (self.token_login and self.checks_need_app and op_id in ("checks/create",
                                                                      "checks/update")):
            raise _ApiError(403, _error(403, "You must authenticate via a GitHub App.", op))
        # parameters and body against the operation's schemas
        errors = self._check_params(op_id, op, params, raw_query, where)
        body = self._parse_body(op_id, op, rec, where)
        if op_id in ("checks/create", "checks/update"):
            out = body.get("output") if isinstance(body, dict) else None
            ann = out.get("annotations") if isinstance(out, dict) else None
            n = len(ann) if isinstance(ann, list) else 0
            with self.lock:
                self.annotation_batches.append(n)
        if errors:
            self._invalid(op_id, op, where, errors)
        if op.get("requestBody") and body is not None:
            errs = schema_errors(("body", op_id), op["requestBody"]["json_schema"], body)
            if errs:
                self._invalid(op_id, op, where, errs)
        handler = getattr(self, "_op_" + op_id.replace("/", "_").replace("-", "_"))
        reply = handler(op, params, rec.query, body, where)
        self._check_own(op_id, str(reply.status), reply.body)
        return reply

    def _invalid(self, op_id, op, where, errors: list[str], resource: str | None = None):
        resource = resource or {"issues": "IssueComment", "checks": "CheckRun",
                                "pulls": "PullRequest", "users": "User"}[op_id.split("/")[0]]
        items = []
        for e in errors:
            fld, _, msg = e.partition(": ")
            items.append({"resource": resource, "field": fld.strip("/") or "(root)",
                          "code": "invalid", "message": _short(msg, 300)})
        raise _ApiError(422, _error(422, "Invalid request.", op, errors=items),
                        violation=f"{where}: invalid request: " + "; ".join(errors[:5]))

    def _check_params(self, op_id, op, params, raw_query, where) -> list[str]:
        errors = []
        declared = {p["name"]: p for p in op["parameters"]}
        for name, value in list(params.items()):
            p = declared[name]
            v = _coerce(value, p.get("json_schema", {}))
            errors += [f"/{name}: {e.partition(': ')[2]}" for e in
                       schema_errors(("param", op_id, name), p.get("json_schema"), v)]
            params[name] = v
        for name, values in raw_query.items():
            p = declared.get(name)
            if p is None or p["in"] != "query":
                self._violate(f"{where}: query parameter {name!r} is not in the API "
                              f"(GitHub ignores it)")
                continue
            if len(values) > 1:
                errors.append(f"/{name}: given {len(values)} times")
            v = _coerce(values[-1], p.get("json_schema", {}))
            errors += [f"/{name}: {e.partition(': ')[2]}" for e in
                       schema_errors(("param", op_id, name), p.get("json_schema"), v)]
        for p in op["parameters"]:
            if p.get("required") and p["in"] == "query" and p["name"] not in raw_query:
                errors.append(f"/{p['name']}: required query parameter missing")
        return errors

    def _parse_body(self, op_id, op, rec, where):
        raw = rec.raw_body
        rb = op.get("requestBody")
        if not raw.strip():
            if rb and rb.get("required"):
                self._invalid(op_id, op, where, ["/: a JSON request body is required"])
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            raise _ApiError(400, _error(400, "Problems parsing JSON", op),
                            violation=f"{where}: body is not JSON: {_short(raw, 80)}") from None
        if rb is None:
            self._violate(f"{where}: a body was sent to an operation that takes none")
            return body
        ctype = rec.headers.get("Content-Type", "")
        if ctype and "json" not in ctype.lower():
            self._violate(f"{where}: JSON body sent with Content-Type {ctype!r}")
        return body

    # ------------------------------------------------------------------ pagination

    def _paginate(self, items: list, query: dict, path: str) -> tuple[list, dict]:
        per_page = max(1, min(int(query.get("per_page", 30) or 30), self.per_page_max))
        page = max(1, int(query.get("page", 1) or 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []
        base = f"{self.url}{path}"

        def link(p, rel):
            q = dict(query)
            if "per_page" in q:
                q["per_page"] = str(per_page)
            q["page"] = str(p)
            return f'<{base}?{urllib.parse.urlencode(q)}>; rel="{rel}"'

        if page > 1:
            links += [link(min(page - 1, last), "prev")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first")]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # ------------------------------------------------------------------ issue comments

    def _author(self) -> tuple[dict, str]:
        if self.token_login:
            return (simple_user(self.api, self.token_login),
                    "OWNER" if self.token_login.lower() == self.owner.lower() else "MEMBER")
        return simple_user(self.api, self.bot_login, user_type="Bot"), "NONE"

    def _new_comment(self, issue_number: int, body: str, user: dict, assoc: str) -> dict:
        cid = self._next_comment_id
        self._next_comment_id += 1
        now = _now()
        u = f"{self.api}/repos/{self.full_name}"
        c = {
            "id": cid,
            "node_id": "IC_kwDO" + base64.b64encode(cid.to_bytes(8, "big")).decode().rstrip("="),
            "url": f"{u}/issues/comments/{cid}",
            "html_url": f"https://github.com/{self.full_name}/pull/{issue_number}"
                        f"#issuecomment-{cid}",
            "body": body,
            "user": user,
            "created_at": now,
            "updated_at": now,
            "issue_url": f"{u}/issues/{issue_number}",
            "author_association": assoc,
            "performed_via_github_app": None,
            "reactions": {"url": f"{u}/issues/comments/{cid}/reactions", "total_count": 0,
                          "+1": 0, "-1": 0, "laugh": 0, "confused": 0, "heart": 0,
                          "hooray": 0, "eyes": 0, "rocket": 0},
        }
        self.comments[cid] = c
        return c

    def _comment_body_limit(self, op_id, op, body, where):
        text = body.get("body", "")
        if len(text) > MAX_COMMENT_BODY:
            raise _ApiError(
                422, _error(422, "Validation Failed", op, errors=[{
                    "resource": "IssueComment", "code": "custom", "field": "body",
                    "message": f"body is too long (maximum is {MAX_COMMENT_BODY} characters)"}]),
                violation=f"{where}: comment body has {len(text)} characters "
                          f"(GitHub's maximum is {MAX_COMMENT_BODY})")

    def _get_comment(self, op, params) -> dict:
        c = self.comments.get(params["comment_id"])
        if c is None:
            raise _ApiError(404, _error(404, "Not Found", op))
        return c

    def _op_issues_create_comment(self, op, params, query, body, where):
        self._comment_body_limit("issues/create-comment", op, body, where)
        user, assoc = self._author()
        with self.lock:
            c = self._new_comment(params["issue_number"], body["body"], user, assoc)
            return _Reply(201, copy.deepcopy(c), {"Location": c["url"]})

    def _op_issues_update_comment(self, op, params, query, body, where):
        self._comment_body_limit("issues/update-comment", op, body, where)
        with self.lock:
            c = self._get_comment(op, params)
            c["body"] = body["body"]
            c["updated_at"] = _now()
            return _Reply(200, copy.deepcopy(c))

    def _op_issues_get_comment(self, op, params, query, body, where):
        with self.lock:
            return _Reply(200, copy.deepcopy(self._get_comment(op, params)))

    def _op_issues_delete_comment(self, op, params, query, body, where):
        with self.lock:
            self._get_comment(op, params)
            del self.comments[params["comment_id"]]
        return _Reply(204)

    def _op_issues_list_comments(self, op, params, query, body, where):
        n = params["issue_number"]
        since = _parse_time(query["since"]) if "since" in query else None
        with self.lock:
            items = [copy.deepcopy(c) for _, c in sorted(self.comments.items())
                     if c["issue_url"].endswith(f"/issues/{n}")
                     and (since is None or _parse_time(c["updated_at"]) >= since)]
        chunk, headers = self._paginate(
            items, query, f"/repos/{self.full_name}/issues/{n}/comments")
        return _Reply(200, chunk, headers)

    # ------------------------------------------------------------------ check runs

    def _checks_rules(self, op_id, op, body, where, existing: dict | None = None):
        errors = []
        out = body.get("output")
        if out is not None and "title" not in out:
            errors.append("/output/title: required when output is given")
        for i, a in enumerate((out or {}).get("annotations") or []):
            cols = "start_column" in a or "end_column" in a
            if cols and a.get("start_line") != a.get("end_line"):
                errors.append(f"/output/annotations/{i}: start_column/end_column are only "
                              "allowed when start_line == end_line")
            if a.get("end_line", 0) < a.get("start_line", 0):
                errors.append(f"/output/annotations/{i}: end_line < start_line")
        status = body.get("status", (existing or {}).get("status"))
        if (status == "completed" or "completed_at" in body) and not (
                body.get("conclusion") or (existing or {}).get("conclusion")):
            errors.append("/conclusion: required when status is completed or completed_at "
                          "is given")
        if "head_sha" in body and not re.fullmatch(r"[0-9a-f]{40}", body["head_sha"]):
            raise _ApiError(422, _error(422, f"No commit found for SHA: {body['head_sha']}", op),
                            violation=f"{where}: head_sha {body['head_sha']!r} is not a "
                                      "commit sha")
        if errors:
            self._invalid(op_id, op, where, errors)

    def _apply_check_body(self, run: dict, body: dict) -> None:
        for k in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if k in body:
                run[k] = body[k]
        if "conclusion" in body:
            run["conclusion"] = body["conclusion"]
            run["status"] = "completed"  # GitHub: giving a conclusion completes the run
        if "status" in body and "conclusion" not in body:
            run["status"] = body["status"]
        if run["status"] == "completed" and run["completed_at"] is None:
            run["completed_at"] = _now()
        if run["status"] != "queued" and run["started_at"] is None:
            run["started_at"] = _now()
        out = body.get("output")
        if out is not None:
            o = run["output"]
            o["title"] = out["title"]
            if "summary" in out:
                o["summary"] = out["summary"]
            if "text" in out:
                o["text"] = out["text"]
            run["annotations_all"].extend(copy.deepcopy(out.get("annotations") or []))
            run["images_all"].extend(copy.deepcopy(out.get("images") or []))
            o["annotations_count"] = len(run["annotations_all"])

    def _check_pull_requests(self, head_sha: str) -> list[dict]:
        out = []
        for n, pr in sorted(self.pulls.items()):
            if pr["head"]["sha"] != head_sha or pr["head"]["repo"]["fork"]:
                continue  # GitHub: pushes to a fork are not detected -> empty pull_requests
            out.append({"id": pr["id"], "number": n, "url": pr["url"],
                        "head": _minimal_ref(pr["head"]), "base": _minimal_ref(pr["base"])})
        return out

    def _public_run(self, run: dict) -> dict:
        r = {k: copy.deepcopy(v) for k, v in run.items()
             if k not in ("annotations_all", "images_all")}
        return r

    def _op_checks_create(self, op, params, query, body, where):
        self._checks_rules("checks/create", op, body, where)
        with self.lock:
            rid = self._next_check_run_id
            self._next_check_run_id += 1
            suite = self._next_check_suite_id
            self._next_check_suite_id += 1
            u = f"{self.api}/repos/{self.full_name}"
            html = f"https://github.com/{self.full_name}/runs/{rid}"
            run = {
                "id": rid,
                "head_sha": body["head_sha"],
                "node_id": "CR_kwDO" + base64.b64encode(rid.to_bytes(8, "big")).decode()
                           .rstrip("="),
                "external_id": "",
                "url": f"{u}/check-runs/{rid}",
                "html_url": html,
                "details_url": html,
                "status": "queued",
                "conclusion": None,
                "started_at": None,
                "completed_at": None,
                "output": {"title": None, "summary": None, "text": None,
                           "annotations_count": 0,
                           "annotations_url": f"{u}/check-runs/{rid}/annotations"},
                "name": body["name"],
                "check_suite": {"id": suite},
                "app": github_actions_app(self.api),
                "pull_requests": self._check_pull_requests(body["head_sha"]),
                "annotations_all": [],
                "images_all": [],
            }
            self._apply_check_body(run, body)
            self.check_runs[rid] = run
            return _Reply(201, self._public_run(run), {"Location": run["url"]})

    def _op_checks_update(self, op, params, query, body, where):
        with self.lock:
            run = self.check_runs.get(params["check_run_id"])
            if run is None:
                raise _ApiError(404, _error(404, "Not Found", op))
            self._checks_rules("checks/update", op, body, where, existing=run)
            self._apply_check_body(run, body)
            return _Reply(200, self._public_run(run))

    def _op_checks_get(self, op, params, query, body, where):
        with self.lock:
            run = self.check_runs.get(params["check_run_id"])
            if run is None:
                raise _ApiError(404, _error(404, "Not Found", op))
            return _Reply(200, self._public_run(run))

    def _op_checks_list_for_ref(self, op, params, query, body, where):
        ref = params["ref"]
        with self.lock:
            shas = {ref}
            for pr in self.pulls.values():  # a branch name resolves to its head sha
                if ref in (pr["head"]["ref"], f"refs/heads/{pr['head']['ref']}",
                           f"refs/pull/{pr['number']}/head"):
                    shas.add(pr["head"]["sha"])
            runs = [r for _, r in sorted(self.check_runs.items(), reverse=True)
                    if r["head_sha"] in shas
                    and ("check_name" not in query or r["name"] == query["check_name"])
                    and ("status" not in query or r["status"] == query["status"])
                    and ("app_id" not in query
                         or str(r["app"]["id"]) == str(query["app_id"]))]
            if query.get("filter", "latest") == "latest":
                seen, latest = set(), []
                for r in runs:
                    if r["name"] not in seen:
                        seen.add(r["name"])
                        latest.append(r)
                runs = latest
            items = [self._public_run(r) for r in runs]
        chunk, headers = self._paginate(
            items, query, f"/repos/{self.full_name}/commits/{urllib.parse.quote(ref, safe='')}"
                          "/check-runs")
        return _Reply(200, {"total_count": len(items), "check_runs": chunk}, headers)

    # ------------------------------------------------------------------ pulls, users

    def _op_pulls_get(self, op, params, query, body, where):
        with self.lock:
            pr = self.pulls.get(params["pull_number"])
            if pr is None:
                raise _ApiError(404, _error(404, "Not Found", op))
            pr = copy.deepcopy(pr)
            pr["comments"] = sum(1 for c in self.comments.values()
                                 if c["issue_url"] == pr["issue_url"])
        return _Reply(200, pr)

    def _op_users_get_authenticated(self, op, params, query, body, where):
        if self.token_login is None:  # GITHUB_TOKEN is an installation token: no user
            raise _ApiError(403, _error(403, NOT_ACCESSIBLE, op))
        return _Reply(200, private_user(self.api, self.token_login))


def _minimal_ref(side: dict) -> dict:
    """head/base of a 'Pull Request Minimal' (check runs' pull_requests)."""
    return {"ref": side["ref"], "sha": side["sha"],
            "repo": {"id": side["repo"]["id"], "url": side["repo"]["url"],
                     "name": side["repo"]["name"]}}


def _coerce(value: str, schema: dict):
    """A query/path string as the type its schema wants (integer, boolean), when it parses."""
    t = schema.get("type")
    types = t if isinstance(t, list) else [t]
    if "integer" in types and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    return value
