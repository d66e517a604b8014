"""A smoke suite of API tests, as a catalog fragment."""

from __future__ import annotations

SMOKE = """
    api_tests:
      smoke:
        steps:
          - name: version
            url: "{{base_url}}/version"
            extract: {running: json.sha}
            assert:
              - {status: 200}
              - {json: sha, equals: "{{sha}}"}
              - {header: Content-Type, contains: json}
          - name: greeting
            url: "{{base_url}}/version"
            assert:
              - {json: greeting, contains: "{{loud}}"}
              - {response_time_ms: 2000}
"""
