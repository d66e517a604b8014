"""Small helpers that know nothing of deploys: ages (humanize), the deploy id on log lines (logcontext),
YAML lines and limits (yaml_lines), one-line reasons (text), git ref names (refs), redacting credentials
(redact), files only Gantry may read (private_file), cache generations (generations), and the client
address behind proxies (client_ip).
"""
