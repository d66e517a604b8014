"""The outside systems, one module each: GitHub, Jenkins, Slack, HAProxy, SSH (the one place that
uses Fabric/paramiko) and git (the local mirrors). Leaves: plain values in and out, explicit timeouts,
errors that say whether retrying can help; they import nothing of Gantry's but errors and lib.
"""
