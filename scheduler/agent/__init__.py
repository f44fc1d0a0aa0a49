"""The Suanli node agent: a plain HTTP client of the agent API, no Django.

Run one node with ``python -m scheduler.agent --server URL --token NODE_TOKEN``, or a fleet
of simulated nodes with ``python -m scheduler.agent --server URL --simulate N ...``.
"""

AGENT_VERSION = "0.1.0"
