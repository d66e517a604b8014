"""The web: pages (views.py), their buttons (actions.py), the services matrix (matrix.py), history,
delivery metrics, operator endpoints (ops.py), the REST API (api/) and the endpoints other systems call
(hooks/). urls.py is the root URLconf. The web reads the database and calls deployer; it never talks to
a host, a repository or an outside API.
"""
