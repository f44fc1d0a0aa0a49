"""The Suanli node agent: a plain HTTP client of the agent API, no Django.

Run one node with ``suanli-agent --server URL --token-file PATH``, or a fleet of simulated
nodes with ``suanli-agent --server URL --simulate N ...`` (``python -m suanli_agent`` is the
same command).
"""

# The one place the version is written: the wheel's metadata (pyproject.toml) and the
# server's download URL both read it from here.
__version__ = "0.1.0"
AGENT_VERSION = __version__
