"""REST API of the customers app: the staff API and the customer portal."""
