"""Write-side core of Concord, split by domain. Views, tasks and commands call these."""
