"""The tasks marketplace's services start, sent by name after commit (core.enqueue).

None yet: the marketplace's tasks are periodic work that beat runs, and its services
start scheduler's and banking's tasks through those apps' services. A task a marketplace
service needs to start is named here, as `scheduler.enqueue` names its own."""
