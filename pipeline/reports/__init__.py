"""The reports: thin views over `analysis`, each written as markdown, JSON and figures."""
