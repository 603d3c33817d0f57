"""Test helpers: real servers and in-process service runners."""
