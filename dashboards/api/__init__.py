"""The REST API (/api/v1/): views, serializers, URLs."""
