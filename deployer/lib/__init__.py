"""Small helpers with no knowledge of deploys: ages, log context, YAML lines, redaction, private files, client
addresses.
"""
