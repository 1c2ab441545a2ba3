"""Static HTML reports (no server, no network): :mod:`.site` (the site: summary, gallery, image
pages, cache), :mod:`.labels` / :mod:`.labels_summary` (the label stages), :mod:`.predictions`
(a trained network), :mod:`.files` (ownership of the folder's files), :mod:`.plots`."""
