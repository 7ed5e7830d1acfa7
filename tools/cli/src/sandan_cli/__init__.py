"""sandan's command line for county IT operators and support staff (`sandan --help`)."""
