module mailwarden.test/controlplane/pause

go 1.24.0
