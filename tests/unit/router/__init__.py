"""Tests of the router: the in-process library and the HTTP service."""
