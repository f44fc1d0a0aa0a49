"""Below every app: the error kernel and its codes, the API's error rendering, database
helpers below the ORM, request ids and metrics, and the admin site the apps add panels to.
Imports Django and nothing of this project."""
