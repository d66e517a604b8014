"""Delivery.

continuous.py  continuous delivery: an environment that follows a branch gets its green head
dora.py        the DORA delivery metrics of production deploys
"""
