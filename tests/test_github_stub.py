"""The stand-in GitHub REST server (tests/github_stub.py): PyGithub works against it, and it
rejects what GitHub rejects."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import github
import pytest
from github import Auth, Github
from github_stub import (
    FIXTURES,
    NOT_ACCESSIBLE,
    GitHubStub,
    make_pull_request_event,
    rest_spec,
    validate_event,
)

HEAD, BASE = "a" * 40, "b" * 40
MARKER = "<!-- adaptergate:report -->"


def gh_for(stub: GitHubStub, *, token: str | None = None, **kw) -> Github:
    # PyGithub waits 0.25 s between requests and 1 s between writes by default; not here
    return Github(auth=Auth.Token(token or stub.token), base_url=stub.url,
                  retry=kw.pop("retry", None),
                  seconds_between_requests=0, seconds_between_writes=0, lazy=True, **kw)


def repo_of(stub: GitHubStub, **kw):
    return gh_for(stub, **kw).get_repo(f"{stub.owner}/{stub.repo}")


def raw(stub: GitHubStub, method: str, path: str, body=None, *, token: str | None = "default",
        headers: dict | None = None, base: str | None = None):
    """One request with urllib (to ``base`` + ``path``, default the stub's url): (status,
    headers, parsed JSON or text)."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request((base or stub.url) + path, data=data, method=method)
    if token == "default":
        token = stub.token
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, hdrs, payload = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, payload = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(payload) if payload else None
    except ValueError:
        return status, hdrs, payload.decode()


@pytest.fixture(params=["", "/api/v3"], ids=["github.com", "ghes"])
def stub(request):
    with GitHubStub(prefix=request.param) as s:
        s.add_pull(7, head_sha=HEAD, base_sha=BASE)
        yield s


@pytest.fixture
def plain():
    with GitHubStub() as s:
        s.add_pull(7, head_sha=HEAD, base_sha=BASE)
        yield s


# ------------------------------------------------------------------------------ vendored files

def test_vendored_rest_subset_has_the_operations_and_its_attribution():
    spec = rest_spec()
    assert sorted(spec["operations"]) == sorted([
        "issues/create-comment", "issues/update-comment", "issues/list-comments",
        "issues/get-comment", "issues/delete-comment", "checks/create", "checks/update",
        "checks/get", "checks/list-for-ref", "pulls/get", "users/get-authenticated"])
    assert spec["operations"]["users/get-authenticated"]["path"] == "/user"
    readme = (FIXTURES / "README.md").read_text()
    assert spec["source"]["sha256"] in readme and "users/get-authenticated" in readme
    hook = json.loads((FIXTURES / "webhook-pull-request-subset.json").read_text())
    assert hook["source"]["sha256"] in readme
    assert "Permission is hereby granted" in (FIXTURES / "LICENSE-octokit").read_text()
    # everything the stub reads lives in the project
    stub_src = (Path(__file__).parent / "github_stub.py").read_text()
    assert "../shared" not in stub_src and "/work/" not in stub_src


# ------------------------------------------------------------------------------ pulls

def test_get_pull_same_repo(stub):
    pr = repo_of(stub).get_pull(7)
    assert (pr.number, pr.head.sha, pr.base.sha) == (7, HEAD, BASE)
    assert pr.head.repo.full_name == pr.base.repo.full_name == "acme/adapters"
    assert pr.head.repo.fork is False
    assert [(r.method, r.path, r.status, r.operation_id) for r in stub.requests] == [
        ("GET", f"{stub.prefix}/repos/acme/adapters/pulls/7", 200, "pulls/get")]
    assert stub.violations == []


def test_get_pull_from_a_fork(plain):
    plain.add_pull(9, head_sha="c" * 40, base_sha=BASE, head_repo_full_name="mallory/adapters")
    pr = repo_of(plain).get_pull(9)
    assert pr.head.repo.full_name == "mallory/adapters" and pr.head.repo.fork is True
    assert pr.base.repo.full_name == "acme/adapters" and pr.head.user.login == "mallory"
    with pytest.raises(github.UnknownObjectException):
        repo_of(plain).get_pull(404).head  # noqa: B018 - not registered: 404, not a violation
    assert plain.violations == []


# ------------------------------------------------------------------------------ issue comments

def test_sticky_comment_lifecycle(stub):
    stub.add_comment(7, "LGTM", login="reviewer")
    pr = repo_of(stub).get_pull(7)
    c = pr.create_issue_comment(f"{MARKER}\nfirst")
    assert c.user.login == "github-actions[bot]" and c.user.type == "Bot"
    assert c.html_url == f"https://github.com/acme/adapters/pull/7#issuecomment-{c.id}"
    assert c.url == f"{stub.url}/repos/acme/adapters/issues/comments/{c.id}"
    mine = [x for x in pr.get_issue_comments() if x.body.startswith(MARKER)]
    assert [x.id for x in mine] == [c.id]
    mine[0].edit(f"{MARKER}\nsecond")
    assert stub.comments[c.id]["body"] == f"{MARKER}\nsecond"
    assert repo_of(stub).get_issue(7).get_comments().totalCount == 2
    mine[0].delete()
    assert [x["body"] for x in stub.comments.values()] == ["LGTM"]
    ops = [r.operation_id for r in stub.requests]
    assert ops == ["pulls/get", "issues/create-comment", "issues/list-comments",
                   "issues/update-comment", "issues/list-comments", "issues/delete-comment"]
    assert stub.requests[-1].status == 204
    assert all(r.path.startswith(stub.prefix + "/repos/") for r in stub.requests)
    assert stub.violations == []


def test_comments_via_issue_object_need_no_issue_get(plain):
    """repo.get_issue(n) / pr.as_issue() build the object from its URL: no issues/get call."""
    issue = repo_of(plain).get_issue(7)
    issue.create_comment("hello")
    assert [x.body for x in issue.get_comments()] == ["hello"]
    assert [r.operation_id for r in plain.requests] == ["issues/create-comment",
                                                        "issues/list-comments"]
    assert plain.violations == []


def test_paginates_250_comments_in_three_requests(stub):
    for i in range(250):
        stub.add_comment(7, f"c{i}")
    n0 = len(stub.requests)
    bodies = [c.body for c in gh_for(stub, per_page=100).get_repo("acme/adapters")
              .get_issue(7).get_comments()]
    assert bodies == [f"c{i}" for i in range(250)]
    pages = stub.requests[n0:]
    assert [(r.query.get("page"), r.query["per_page"]) for r in pages] == [
        (None, "100"), ("2", "100"), ("3", "100")]
    # the Link headers themselves
    _, h, first = raw(stub, "GET", "/repos/acme/adapters/issues/7/comments?per_page=100")
    base = f"{stub.url}/repos/acme/adapters/issues/7/comments"
    assert len(first) == 100
    assert h["Link"] == (f'<{base}?per_page=100&page=2>; rel="next", '
                         f'<{base}?per_page=100&page=3>; rel="last"')
    _, h, last = raw(stub, "GET", "/repos/acme/adapters/issues/7/comments?per_page=100&page=3")
    assert len(last) == 50
    assert h["Link"] == (f'<{base}?per_page=100&page=2>; rel="prev", '
                         f'<{base}?per_page=100&page=1>; rel="first"')
    _, h, default = raw(stub, "GET", "/repos/acme/adapters/issues/7/comments")
    assert len(default) == 30 and 'page=9>; rel="last"' in h["Link"]
    assert stub.violations == []


def test_per_page_is_capped():
    with GitHubStub(per_page_max=10) as s:
        for i in range(25):
            s.add_comment(3, f"c{i}")
        status, h, page = raw(s, "GET", "/repos/acme/adapters/issues/3/comments?per_page=100")
        assert status == 200 and len(page) == 10 and 'per_page=10&page=3>; rel="last"' in h["Link"]
        assert s.violations == []


def test_comment_body_limit(plain):
    issue = repo_of(plain).get_issue(7)
    issue.create_comment("x" * 65536)
    with pytest.raises(github.GithubException) as e:
        issue.create_comment("x" * 65537)
    assert e.value.status == 422 and e.value.data["message"] == "Validation Failed"
    assert "body is too long" in e.value.data["errors"][0]["message"]
    assert len(plain.comments) == 1
    assert len(plain.violations) == 1 and "65537" in plain.violations[0]


# ------------------------------------------------------------------------------ check runs

def _ann(i, level="warning"):
    return {"path": "adapters/t1.safetensors", "start_line": i + 1, "end_line": i + 1,
            "annotation_level": level, "message": f"slice {i} regressed"}


def test_check_run_create_update_with_annotations(stub):
    repo = repo_of(stub)
    run = repo.create_check_run("adaptergate", HEAD, status="in_progress",
                                output={"title": "Evaluating", "summary": "...",
                                        "annotations": [_ann(0)]})
    assert run.status == "in_progress" and run.conclusion is None
    assert run.html_url == f"https://github.com/acme/adapters/runs/{run.id}"
    assert [p.number for p in run.pull_requests] == [7]
    run.edit(conclusion="failure", output={"title": "Blocked", "summary": "2 tenants regressed",
                                          "annotations": [_ann(i, "failure") for i in range(50)]})
    assert (run.status, run.conclusion, run.output.title) == ("completed", "failure", "Blocked")
    stored = stub.check_runs[run.id]
    assert stub.annotation_batches == [1, 50]
    assert len(stored["annotations_all"]) == 51 and stored["output"]["annotations_count"] == 51
    assert stored["completed_at"] is not None
    got = repo.get_check_run(run.id)
    assert got.output.annotations_count == 51 and got.output.summary == "2 tenants regressed"
    repo.create_check_run("other-check", HEAD, conclusion="success")
    listed = list(repo.get_commit(HEAD).get_check_runs(check_name="adaptergate"))
    assert [r.id for r in listed] == [run.id]
    assert repo.get_commit(HEAD).get_check_runs().totalCount == 2
    assert stub.violations == []


def test_fork_pull_check_runs_list_no_pull_requests(plain):
    plain.add_pull(9, head_sha="c" * 40, base_sha=BASE, head_repo_full_name="mallory/adapters")
    run = repo_of(plain).create_check_run("adaptergate", "c" * 40, conclusion="neutral")
    assert run.pull_requests == [] and run.status == "completed"
    assert plain.violations == []


def test_51_annotations_rejected(plain):
    with pytest.raises(github.GithubException) as e:
        repo_of(plain).create_check_run("adaptergate", HEAD, output={
            "title": "t", "summary": "s", "annotations": [_ann(i) for i in range(51)]})
    assert e.value.status == 422
    assert plain.check_runs == {} and plain.annotation_batches == [51]
    assert len(plain.violations) == 1 and "annotations" in plain.violations[0]
    assert "51 items" in plain.violations[0]


def test_bad_conclusion_rejected(plain):
    with pytest.raises(github.GithubException) as e:
        repo_of(plain).create_check_run("adaptergate", HEAD, conclusion="bogus")
    assert e.value.status == 422 and e.value.data["message"] == "Invalid request."
    assert e.value.data["errors"][0]["field"] == "conclusion"
    assert plain.check_runs == {}
    assert len(plain.violations) == 1 and "'bogus' is not one of" in plain.violations[0]


@pytest.mark.parametrize("edit, needle", [
    ({"output": {"title": "t", "summary": "x" * 65536}}, "65536 characters"),
    ({"output": {"title": "t", "summary": "s", "text": "x" * 65536}}, "/output/text"),
    ({"output": {"summary": "no title"}}, "/output/title"),
    ({"status": "completed"}, "conclusion"),
    ({"output": {"title": "t", "summary": "s", "annotations": [
        {**_ann(0), "end_line": 3, "start_column": 1, "end_column": 2}]}}, "start_column"),
])
def test_check_run_update_limits(plain, edit, needle):
    repo = repo_of(plain)
    run = repo.create_check_run("adaptergate", HEAD, status="in_progress")
    with pytest.raises(github.GithubException) as e:
        run.edit(**edit)
    assert e.value.status == 422
    assert len(plain.violations) == 1 and needle in plain.violations[0]
    run.edit(output={"title": "t", "summary": "x" * 65535}, conclusion="success")
    assert plain.check_runs[run.id]["conclusion"] == "success"
    assert len(plain.violations) == 1


def test_check_run_head_sha_must_be_a_commit(plain):
    with pytest.raises(github.GithubException) as e:
        repo_of(plain).create_check_run("adaptergate", "main")
    assert e.value.status == 422 and "No commit found" in e.value.data["message"]
    assert len(plain.violations) == 1


# ---------------------------------------------------------------------- identity, permissions

def test_get_user_is_403_for_github_token(plain):
    with pytest.raises(github.GithubException) as e:
        gh_for(plain).get_user().login  # noqa: B018
    assert e.value.status == 403 and e.value.data["message"] == NOT_ACCESSIBLE
    assert plain.violations == []


def test_pat_identity_authors_comments_and_cannot_write_checks():
    with GitHubStub(token_login="alice") as s:
        gh = gh_for(s)
        assert gh.get_user().login == "alice"
        c = gh.get_repo("acme/adapters").get_issue(7).create_comment("hi")
        assert (c.user.login, c.user.type) == ("alice", "User")
        with pytest.raises(github.GithubException) as e:
            gh.get_repo("acme/adapters").create_check_run("adaptergate", HEAD)
        assert e.value.status == 403 and "GitHub App" in e.value.data["message"]
        assert s.violations == []


def test_read_only_token_gets_403_on_writes(plain):
    plain.read_only = True
    repo = repo_of(plain)
    assert repo.get_pull(7).head.sha == HEAD  # reads still work
    for write in (lambda: repo.get_issue(7).create_comment("x"),
                  lambda: repo.create_check_run("adaptergate", HEAD)):
        with pytest.raises(github.GithubException) as e:
            write()
        assert e.value.status == 403 and e.value.data["message"] == NOT_ACCESSIBLE
    plain.read_only = False
    cid = repo.get_issue(7).create_comment("x").id
    plain.read_only = True
    status, _, _ = raw(plain, "DELETE", f"/repos/acme/adapters/issues/comments/{cid}")
    assert status == 403 and cid in plain.comments
    assert plain.comments and plain.check_runs == {} and plain.violations == []


def test_bad_and_missing_credentials(plain):
    with pytest.raises(github.BadCredentialsException):
        repo_of(plain, token="ghp_wrong").get_pull(7).head  # noqa: B018
    status, _, body = raw(plain, "GET", "/repos/acme/adapters/pulls/7", token=None)
    assert status == 401 and body["message"] == "Requires authentication"
    status, _, _ = raw(plain, "GET", "/repos/acme/adapters/pulls/7",
                       headers={"Authorization": f"Bearer {plain.token}"})
    assert status == 200
    assert len(plain.violations) == 2
    assert "bad credentials" in plain.violations[0] and "no Authorization" in plain.violations[1]


# ------------------------------------------------------------------------------ failures on demand

def test_fail_next_502_is_served_and_counted(plain):
    repo = repo_of(plain)
    plain.fail_next(1, 502)
    with pytest.raises(github.GithubException) as e:
        repo.get_pull(7).head  # noqa: B018
    assert e.value.status == 502 and "502 Bad Gateway" in str(e.value.data)
    assert repo.get_pull(7).head.sha == HEAD
    assert [(r.status, r.operation_id) for r in plain.requests] == [(502, "pulls/get"),
                                                                    (200, "pulls/get")]
    assert plain.violations == []


def test_fail_next_matches_method_and_path(plain):
    repo = repo_of(plain)
    plain.fail_next(2, 503, method="POST", path_regex=r"/check-runs$")
    assert repo.get_pull(7).head.sha == HEAD
    repo.get_issue(7).create_comment("not a check run")
    for _ in range(2):
        with pytest.raises(github.GithubException) as e:
            repo.create_check_run("adaptergate", HEAD)
        assert e.value.status == 503
    assert repo.create_check_run("adaptergate", HEAD).status == "queued"


def test_fail_next_rate_limits(plain):
    repo = repo_of(plain)
    plain.fail_next(1, 403)
    with pytest.raises(github.RateLimitExceededException) as e:
        repo.get_issue(7).create_comment("x")
    assert e.value.headers["retry-after"] == "1"
    assert "secondary rate limit" in e.value.data["message"]
    plain.fail_next(1, 429, headers={"Retry-After": "7"})
    with pytest.raises(github.GithubException) as e:
        repo.get_issue(7).create_comment("x")
    assert e.value.status == 429 and e.value.headers["retry-after"] == "7"
    assert plain.comments == {} and len(plain.requests) == 2


def test_a_retrying_client_gets_through(plain):
    from urllib3.util.retry import Retry
    plain.fail_next(2, 502)
    retry = Retry(total=3, status_forcelist=[502], backoff_factor=0, allowed_methods=None)
    assert repo_of(plain, retry=retry).get_pull(7).head.sha == HEAD
    assert [r.status for r in plain.requests] == [502, 502, 200]


# ---------------------------------------------------------------------- routing & validation

def test_unknown_routes_wrong_repo_and_prefix_are_violations():
    with GitHubStub(prefix="/api/v3") as s:
        s.add_pull(7, head_sha=HEAD, base_sha=BASE)
        assert raw(s, "GET", "/repos/acme/adapters/issues/7")[0] == 404  # issues/get: not in subset
        assert raw(s, "GET", "/repos/acme/other/pulls/7")[0] == 404
        assert raw(s, "PUT", "/repos/acme/adapters/pulls/7")[0] == 404
        status, _, _ = raw(s, "GET", "/repos/acme/adapters/pulls/7")
        assert status == 200
        no_prefix = s.url.removesuffix("/api/v3")  # a client that forgot the GHES prefix
        assert raw(s, "GET", "/repos/acme/adapters/pulls/7", base=no_prefix)[0] == 404
        v = s.violations
        assert len(v) == 4
        assert "unknown route" in v[0] and "not the stub's" in v[1] and "wrong method" in v[2]
        assert "outside the prefix" in v[3]


def test_non_lazy_get_repo_is_not_in_the_subset(plain):
    """gh.get_repo() without lazy fetches repos/get, which the stub does not serve."""
    gh = Github(auth=Auth.Token(plain.token), base_url=plain.url, retry=None,
                seconds_between_requests=0, seconds_between_writes=0)
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo("acme/adapters")
    assert len(plain.violations) == 1 and "unknown route" in plain.violations[0]


def test_query_and_body_validation(plain):
    status, _, body = raw(plain, "GET", "/repos/acme/adapters/issues/7/comments?per_page=lots")
    assert status == 422 and body["errors"][0]["field"] == "per_page"
    status, _, _ = raw(plain, "GET", "/repos/acme/adapters/issues/7/comments?sort=created")
    assert status == 200  # GitHub ignores unknown query parameters; the stub flags them
    status, _, _ = raw(plain, "POST", "/repos/acme/adapters/issues/7/comments", {"text": "x"})
    assert status == 422
    status, _, body = raw(plain, "POST", "/repos/acme/adapters/issues/7/comments", b"{not json")
    assert status == 400 and body["message"] == "Problems parsing JSON"
    status, _, _ = raw(plain, "GET", "/repos/acme/adapters/issues/comments/abc")
    assert status == 422
    assert len(plain.violations) == 5, plain.violations
    assert "'sort' is not in the API" in plain.violations[1]
    assert "'body' is a required property" in plain.violations[2]


def test_response_headers(plain):
    status, h, body = raw(plain, "GET", "/repos/acme/adapters/pulls/7")
    assert status == 200 and h["Content-Type"] == "application/json; charset=utf-8"
    for k in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
              "X-RateLimit-Used", "X-RateLimit-Resource", "X-GitHub-Request-Id"):
        assert h[k], k
    limit, used = int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Used"])
    assert int(h["X-RateLimit-Remaining"]) == limit - used
    assert body["head"]["repo"]["url"] == f"{plain.url}/repos/acme/adapters"


def test_the_stub_checks_its_own_responses(plain):
    """A response that breaks the documented schema is a stub bug, and is reported."""
    plain.pulls[7]["head"]["sha"] = None
    raw(plain, "GET", "/repos/acme/adapters/pulls/7")
    assert len(plain.violations) == 1 and plain.violations[0].startswith("stub bug: pulls/get")


def test_concurrent_clients(plain):
    from concurrent.futures import ThreadPoolExecutor
    issue = repo_of(plain).get_issue(7)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: issue.create_comment(f"c{i}"), range(40)))
    assert len(plain.comments) == 40 and len(set(plain.comments)) == 40
    assert plain.violations == []


# ------------------------------------------------------------------------------ webhook events

@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
@pytest.mark.parametrize("fork", [False, True], ids=["same-repo", "fork"])
def test_pull_request_events_validate(action, fork):
    ev = make_pull_request_event(owner="acme", repo="adapters", number=7, head_sha=HEAD,
                                 base_sha=BASE, action=action, fork=fork, sender="octocat")
    assert validate_event(ev, action) == []
    assert validate_event(json.loads(json.dumps(ev))) == []  # survives a trip through a file
    pr = ev["pull_request"]
    assert (ev["action"], ev["number"], pr["head"]["sha"], pr["base"]["sha"]) == (
        action, 7, HEAD, BASE)
    assert ev["repository"]["full_name"] == pr["base"]["repo"]["full_name"] == "acme/adapters"
    assert pr["head"]["repo"]["fork"] is fork
    assert (pr["head"]["repo"]["full_name"] != "acme/adapters") is fork
    if action == "synchronize":
        assert ev["after"] == HEAD and len(ev["before"]) == 40


def test_event_validation_can_fail():
    ev = make_pull_request_event(owner="acme", repo="adapters", number=7, head_sha=HEAD,
                                 base_sha=BASE)
    del ev["pull_request"]["head"]["repo"]["owner"]
    ev["pull_request"]["created_at"] = "yesterday"
    errors = validate_event(ev)
    assert any("'owner' is a required property" in e for e in errors)
    assert any("is not a 'date-time'" in e for e in errors)
    minimal = {"action": "synchronize", "number": 7, "before": BASE, "after": HEAD,
               "pull_request": {"number": 7, "head": {"sha": HEAD}, "base": {"sha": BASE}},
               "repository": {"full_name": "acme/adapters"}, "sender": {"login": "octocat"}}
    assert len(validate_event(minimal)) > 20
    assert validate_event(ev, "opened") != [] and validate_event(ev, "closed") != []



def test_lifecycle_seed_before_start_and_idle_connections_do_not_block_stop():
    import socket
    import time

    s = GitHubStub(prefix="/api/v3")
    assert s.url.startswith("http://127.0.0.1:") and s.url.endswith("/api/v3")
    pr = s.add_pull(3, head_sha=HEAD, base_sha=BASE)
    assert pr["url"] == f"{s.url}/repos/acme/adapters/pulls/3"
    with s:
        idle = socket.create_connection(("127.0.0.1", s.port))  # opened, never used
        assert raw(s, "GET", "/repos/acme/adapters/pulls/3")[0] == 200
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1
    idle.close()
    s.stop()  # idempotent
    with pytest.raises(RuntimeError):
        s.start()
    assert s.violations == []
