"""THE FLOW: what happens to a deploy, in order, and the file of each step.

1. request.py     asked for (a branch, a promotion, continuous delivery, a rollback): the rules checked,
                  the sha pinned, the row written, handed to the queue (gates.py: the build gate,
                  required_checks.py: or GitHub's required checks; estimates.py: how long it will
                  take; plan.py: the same rules shown before a click)
2. actions.py     what people do to it meanwhile: approve, reject, cancel, decide when paused, mark failed
3. lease_queue.py requests waiting behind a lease start when it ends
4. execution.py   a worker runs it, top to bottom: claim, build once while the hosts connect, roll out,
                  API tests, the outcome
                  (succeeded, tests_failed, failed, rolled_back, cancelled); the one place failures
                  become final states. log.py: its log lines; shipped.py: the commits it shipped;
                  config.py: the config file it writes on every host (secrets masked)
   rules.py       the rules a request must pass, each named (request.py asks them, plan.py shows them;
                  error_budget.py: the SLO's budget and burn rates, read from Prometheus every minute);
                  schema_changes.py: the migration files a deploy ships and code lacking applied ones;
                  migration_check.py: those files linted for what the running release cannot live with
                  (check_ahead.py: asked by a plan page, ahead of any deploy)
5. rollout.py     the batch loop, as docs/release-model.md tells: stage all, the release phase once, then per
                  batch (batches.py) drain, switch, restart, health check, undrain; post-release once.
                  It returns how it ended (endings.py: live, rolled back, cancelled, failed);
                  recovery.py: what a failed batch or a cancel leads to (roll back, stop, pause for a
                  person's decision); canary.py: the first batch judged by its metrics in Prometheus
                  against the hosts on the old release (analysis.py: the measurements, the verdict);
                  fleet.py: the one owner of every host's state (its table of allowed moves) and the
                  SSH connections to every host, opened at once (also while a build runs);
                  host_steps.py: staging, the release phase and pruning on one host;
                  phase_hooks.py: the catalog's hooks at each phase;
                  activation.py: switch and restart each role (roles.py) with its health check
                  (health.py); balancer.py: HAProxy drain around a restart;
                  builder.py: build once on the builder (sandbox.py: a bubblewrap sandbox per build;
                  build_cache.py: its dependency cache; lint_run.py: the migration check's step), or
                  take what Jenkins built (ci_artifacts.py: or what a GitHub Actions run uploaded);
                  phases.py: each batch and analysis as a phase (Grafana)
6. lifecycle.py   every state change: one conditional UPDATE, its log line, history entry, lock and
                  Slack version in one transaction
7. reaper.py      deploys nobody runs any more are settled (a dead worker, a lost message)
"""
