"""What the dashboard pages compute: plain functions the tests call, no Streamlit."""
