"""The staff dashboard, children's portal and block page (Flask app factory; issue 6)."""
