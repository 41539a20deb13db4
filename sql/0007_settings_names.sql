-- Schema version 7: the settings table records DDB2FS_RETENTION under its own name; earlier
-- versions wrote it as DDB2FS_RETENTION_SECONDS, a name no variable has.
DELETE FROM settings WHERE name = 'DDB2FS_RETENTION_SECONDS';
