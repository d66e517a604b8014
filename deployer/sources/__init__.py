"""Where branches and builds come from: git and GitHub, Jenkins, webhooks, and how fresh each is."""
