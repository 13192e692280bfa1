#!/usr/bin/env bash
# The adaptergate bot flow on a local git repository, standing in for GitHub.
#
#   bot_flow.sh REPO TENANT TRAINED_ADAPTER REPLAY_PATH
#
# REPO             a git repository with adaptergate.yaml on the main branch
# TENANT           the tenant whose adapter was retrained
# TRAINED_ADAPTER  the PEFT LoRA adapter directory a training run produced
#                  (training is simulated: the directory is copied in)
# REPLAY_PATH      the replay buffer rejected decisions are appended to
#
# Environment (all optional):
#   RUN_ID       the training run's id (default: a UTC timestamp)
#   AUDIT_LOG    the gate's audit log (default: audit.jsonl beside REPLAY_PATH)
#   BASE_BRANCH  the branch promotions are merged into (default: main)
#   MANIFEST     the manifest, relative to REPO (default: adaptergate.yaml)
#   ADAPTERGATE  the adaptergate command (default: adaptergate on PATH)
#   ADAPTERGATE_CACHE  where the gate caches baseline scores
#
# What stands for what on GitHub:
#   a branch adaptergate/<tenant>-<run-id> + a commit   = the bot's pull request
#   adaptergate gate --manifest ... --base-ref main     = the required gate check
#   git merge --ff-only into main, delete the branch    = auto-merge
#   delete the branch without merging                   = closing a rejected PR
#
# Exit code: the gate's (0 accepted and merged, 1 rejected and closed,
# 2 invalid input, 3 evaluation failed: the branch is kept for inspection).
# A failed promote (nothing to propose) exits with promote's code, no branch.
set -euo pipefail

usage() {
    echo "usage: $0 REPO TENANT TRAINED_ADAPTER REPLAY_PATH" >&2
    exit 2
}

step() { printf '[bot] %s\n' "$*"; }
die() {
    printf '[bot] error: %s\n' "$1" >&2
    exit "${2:-2}"
}

abspath() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}

[ "$#" -eq 4 ] || usage
repo=$(abspath "$1")
tenant=$2
trained=$(abspath "$3")
replay=$(abspath "$4")
run_id=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
audit=$(abspath "${AUDIT_LOG:-$(dirname "$replay")/audit.jsonl}")
base=${BASE_BRANCH:-main}
manifest=${MANIFEST:-adaptergate.yaml}
ag=${ADAPTERGATE:-adaptergate}
branch="adaptergate/${tenant}-${run_id}"
adapter_dir="adapters/${tenant}/${run_id}"

# The bot commits as itself unless the caller says otherwise.
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-adaptergate-bot}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-adaptergate-bot@users.noreply.github.com}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"

[ -d "$trained" ] || die "trained adapter $trained is not a directory"
git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || die "$repo is not a git repository"
cd "$repo"
git check-ref-format --branch "$branch" >/dev/null 2>&1 || die "bad branch name $branch (tenant or RUN_ID)"
git rev-parse --verify --quiet "refs/heads/${base}" >/dev/null || die "no branch $base in $repo"
! git rev-parse --verify --quiet "refs/heads/${branch}" >/dev/null || die "branch $branch already exists"
git diff-index --quiet HEAD -- || die "$repo has uncommitted changes"
[ ! -e "$adapter_dir" ] || die "$adapter_dir already exists"
mkdir -p "$(dirname "$replay")" "$(dirname "$audit")"

# 1. the pull request's branch
git checkout -q "$base"
git checkout -q -b "$branch"
step "branch: $branch from $base ($(git rev-parse --short HEAD))"

# 2. training (simulated): the new adapter in a directory of its own
mkdir -p "adapters/${tenant}"
cp -R "$trained" "$adapter_dir"
step "train: $adapter_dir (copied from $trained)"

# 3. the manifest edit
promoted=$("$ag" promote --tenant "$tenant" --adapter "$adapter_dir" --manifest "$manifest" \
    --creator "$GIT_AUTHOR_NAME" 2>&1) || {
    rc=$?
    printf '%s\n' "$promoted" >&2
    rm -rf "$adapter_dir"
    git checkout -q "$base"
    git branch -q -D "$branch"
    die "promote failed (exit $rc): no pull request opened" "$rc"
}
summary=$(printf '%s\n' "$promoted" | head -n 1)
version=${summary##* }
step "promote: $summary"

# 4. the pull request
git add -- "$adapter_dir" "$manifest"
git commit -q -m "adaptergate: promote ${tenant} to ${version} (run ${run_id})"
step "pr: committed $(git rev-parse --short HEAD) on $branch"

# 5. the required check
step "gate: adaptergate gate --manifest $manifest --base-ref $base"
code=0
"$ag" gate --manifest "$manifest" --base-ref "$base" \
    --replay-path "$replay" --audit-log "$audit" 2>&1 | sed 's/^/    /' || code=$?

# 6. what GitHub does with the result
case "$code" in
    0)
        git checkout -q "$base"
        git merge -q --ff-only "$branch"
        git branch -q -d "$branch"
        step "merged: $tenant $version is on $base ($(git rev-parse --short HEAD)); branch deleted"
        ;;
    1)
        git checkout -q "$base"
        git branch -q -D "$branch"
        step "closed: $tenant $version rejected; $base unchanged, branch deleted; decision in $replay"
        ;;
    *)
        git checkout -q "$base"
        step "stopped: gate exit $code; $branch kept for inspection, $base unchanged"
        ;;
esac
exit "$code"
