"""Paper execution: signals become orders and simulated fills against a portfolio."""
