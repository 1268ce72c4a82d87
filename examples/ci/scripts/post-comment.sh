#!/usr/bin/env bash
# Posts a Markdown file as one pull-request (GitHub) or merge-request
# (GitLab) comment, and on later runs updates that same comment instead of
# adding another. The comment is found by the marker line the file starts
# with (plan-summary.sh writes it).
#
# Usage: post-comment.sh SUMMARY_FILE
# GitHub (default):  GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), PR_NUMBER,
#                    GITHUB_API_URL (set by Actions; default https://api.github.com)
# GitLab (GITLAB_CI=true or COMMENT_PLATFORM=gitlab):
#                    GITLAB_TOKEN (api scope), CI_API_V4_URL, CI_PROJECT_ID,
#                    CI_MERGE_REQUEST_IID (set by GitLab CI)
# Needs curl and jq.
set -euo pipefail

if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 SUMMARY_FILE" >&2
  exit 2
fi
marker='<!-- mlregistry-plan-summary -->'
# Both hosts cap a comment at 65536 characters (GitLab: 1 MB); keep clear.
body=$(head -c 60000 "$1")
if [ "$(wc -c <"$1")" -gt 60000 ]; then
  body="$body"$'\n\n… (summary cut at 60000 bytes; the whole summary is in the job log)'
fi
case "$body" in
  "$marker"*) ;;
  *) body="$marker"$'\n'"$body" ;;
esac

platform=${COMMENT_PLATFORM:-}
if [ -z "$platform" ]; then
  if [ "${GITLAB_CI:-}" = "true" ]; then platform=gitlab; else platform=github; fi
fi

if [ "$platform" = "gitlab" ]; then
  : "${GITLAB_TOKEN:?set GITLAB_TOKEN (a token with api scope)}" "${CI_API_V4_URL:?}" "${CI_PROJECT_ID:?}" "${CI_MERGE_REQUEST_IID:?run in a merge request pipeline}"
  api="$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes"
  auth="PRIVATE-TOKEN: $GITLAB_TOKEN"
  field=body
else
  : "${GITHUB_TOKEN:?set GITHUB_TOKEN}" "${GITHUB_REPOSITORY:?}" "${PR_NUMBER:?set PR_NUMBER to the pull request number}"
  base=${GITHUB_API_URL:-https://api.github.com}
  api="$base/repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments"
  auth="Authorization: Bearer $GITHUB_TOKEN"
  field=body
fi

call() { # METHOD URL [JSON]
  local args=(--silent --show-error --fail --location -X "$1" -H "$auth" -H "Accept: application/json")
  if [ "$#" -eq 3 ]; then
    args+=(-H "Content-Type: application/json" --data-binary "$3")
  fi
  curl "${args[@]}" "$2"
}

existing=""
for page in $(seq 1 50); do
  list=$(call GET "$api?per_page=100&page=$page")
  existing=$(jq -r --arg m "$marker" --arg f "$field" '[.[] | select(.[$f] | startswith($m))][0].id // empty' <<<"$list")
  if [ -n "$existing" ] || [ "$(jq length <<<"$list")" -lt 100 ]; then
    break
  fi
done

payload=$(jq -n --arg b "$body" '{body: $b}')
if [ -n "$existing" ]; then
  if [ "$platform" = "gitlab" ]; then
    call PUT "$api/$existing" "$payload" >/dev/null
  else
    call PATCH "$base/repos/$GITHUB_REPOSITORY/issues/comments/$existing" "$payload" >/dev/null
  fi
  echo "updated comment $existing"
else
  id=$(call POST "$api" "$payload" | jq -r .id)
  echo "created comment $id"
fi
