"""Storefront pages: thin views over the same services and selectors as the API.

One module per area; `base.py` holds what every page needs (the organization a request
acts for, the 404 on another organization's object).
"""
