#!/usr/bin/env bash
# A runbook step driven by falcoir: respond to one Falco alert, then act on the outcome
# using nothing but falcoir's JSON and its exit codes.
#
#   examples/runbook.sh ALERT_FILE [EVIDENCE_DIR]
#   kubectl logs -n falco ds/falco --tail=1 | examples/runbook.sh -
#
# Environment: FALCOIR (the command, default "falcoir"), KUBECONFIG / FALCOIR_CONTEXT,
# RUNBOOK_NO_DELETE=1 to keep the pod quarantined, RUNBOOK_DRY_RUN=1 to change nothing.
# Needs jq.
set -uo pipefail

alert_file=${1:?usage: runbook.sh ALERT_FILE|- [EVIDENCE_DIR]}
evidence_dir=${2:-./falcoir-evidence}
read -r -a falcoir <<<"${FALCOIR:-falcoir}"

args=(respond -f "$alert_file" --out "$evidence_dir" --yes -o json)
[[ -n "${FALCOIR_CONTEXT:-}" ]] && args+=(--context "$FALCOIR_CONTEXT")
[[ "${RUNBOOK_NO_DELETE:-0}" == 1 ]] && args+=(--no-delete)
[[ "${RUNBOOK_DRY_RUN:-0}" == 1 ]] && args+=(--dry-run)

result=$("${falcoir[@]}" "${args[@]}")
rc=$?

field() { jq -r "$1 // empty" <<<"$result"; }

case $rc in
  0)
    echo "incident $(field .incident): $(field .status)"
    echo "  pod:        $(field '.locate.namespace')/$(field '.locate.pod') (found by $(field '.locate.method'))"
    echo "  contained:  egress blocked = $(field '.quarantine.verified.egress_blocked') after $(field '.timings.containment_s') s"
    echo "  evidence:   $(field '.collect.archive') sha256 $(field '.collect.archive_sha256')"
    echo "  deleted:    $(field '.delete.deleted') ($(field '.delete.owner_effect'))"
    echo "  report:     $(field '.report.html')"
    ;;
  7)
    echo "evidence incomplete for incident $(field .incident): the pod was kept quarantined" >&2
    echo "  bundle: $(field '.collect.bundle')" >&2
    jq -r '.collect.artifacts[] | select(.status != "ok") | "  - \(.name): \(.status)"' <<<"$result" >&2
    ;;
  3) echo "cluster unreachable: check KUBECONFIG / --context, then re-run" >&2 ;;
  4)
    echo "forbidden at step $(field .failed_step); missing permissions:" >&2
    jq -r '.error.missing[]? | "  - \(.)"' <<<"$result" >&2
    echo "apply the ClusterRole from examples/rbac.yaml for this identity" >&2
    ;;
  5 | 6) echo "could not pin the pod down: $(field .error.message)" >&2 ;;
  2) echo "bad input or not confirmed (no JSON was produced)" >&2 ;;
  *) echo "step $(field .failed_step) failed: $(field .error.message)" >&2 ;;
esac
exit "$rc"
