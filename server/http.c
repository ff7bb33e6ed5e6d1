/* placeholder: the HTTP front arrives with the server work */
