"""The prompt studio: projects (studio documents), compiling, versions, runs, the private chat's
`/improve`, and the template library."""
