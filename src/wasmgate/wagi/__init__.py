"""WAGI: the CGI-for-WASI protocol (pure translation) and its host extensions."""
