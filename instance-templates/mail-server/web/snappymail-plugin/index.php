<?php
/**
 * Snappymail plugin of the SlapOS mail bundle: an account changes its
 * password from the webmail's settings, through the same module as the
 * password page and the instance (recipes.stores.accounts), never by writing the
 * account database itself.
 *
 * The instance installs it as _data_/_default_/plugins/mailbundle-change-password/
 * with config.json: {"command": [python, "-m", "recipes.programs.passwords",
 * "change-password", DIRECTORY]}. The address is appended to the command;
 * the current password, then the new one, go to its standard input (never
 * on a command line). Exit codes: 0 changed, 3 unknown user, 4 wrong
 * current password, 5 new password refused (reason on standard error).
 *
 * Written against Snappymail 2.3x's plugin API; it can only be exercised
 * with the Snappymail archive (see software/component/snappymail).
 */

use RainLoop\Exceptions\ClientException;
use RainLoop\Notifications;

class MailbundleChangePasswordPlugin extends \RainLoop\Plugins\AbstractPlugin
{
	const
		NAME = 'Mail bundle password',
		AUTHOR = 'SlapOS mail bundle',
		VERSION = '1.0',
		RELEASE = '2025-01-01',
		REQUIRED = '2.30.0',
		CATEGORY = 'Security',
		LICENSE = 'MIT',
		DESCRIPTION = 'Change the account password in the mail backend';

	public function Init() : void
	{
		$this->addJs('js/MailbundleChangePassword.js');
		$this->addTemplate('templates/MailbundleChangePasswordSettings.html');
		$this->addJsonHook('MailbundleChangePassword', 'DoChangePassword');
	}

	/** [exit code, message] of the accounts module. */
	private static function run(string $address, string $current, string $new) : array
	{
		$config = \json_decode((string) \file_get_contents(__DIR__ . '/config.json'), true);
		$command = \array_merge($config['command'], [$address]);
		$process = \proc_open($command, [
			0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w'],
		], $pipes, null, ['PATH' => '/usr/bin:/bin', 'LANG' => 'C.UTF-8']);
		if (!\is_resource($process)) {
			return [1, 'the password could not be changed (the accounts module did not start)'];
		}
		\fwrite($pipes[0], $current . "\n" . $new . "\n");
		\fclose($pipes[0]);
		\stream_get_contents($pipes[1]);
		$error = \trim((string) \stream_get_contents($pipes[2]));
		\fclose($pipes[1]);
		\fclose($pipes[2]);
		return [\proc_close($process), $error];
	}

	public function DoChangePassword()
	{
		$actions = $this->Manager()->Actions();
		$account = $actions->GetAccount();
		$current = (string) $this->jsonParam('PrevPassword');
		$new = (string) $this->jsonParam('NewPassword');
		if (!$account || '' === $new) {
			throw new ClientException(Notifications::CouldNotSaveNewPassword);
		}
		list($code, $error) = static::run($account->Email(), $current, $new);
		if (4 === $code) {
			throw new ClientException(Notifications::CurrentPasswordIncorrect, null, $error);
		}
		if (0 !== $code) {
			throw new ClientException(Notifications::CouldNotSaveNewPassword, null,
				$error ?: 'the password could not be changed');
		}
		// the session goes on with the new password (IMAP/SMTP logins)
		$secret = \class_exists('SnappyMail\\SensitiveString')
			? new \SnappyMail\SensitiveString($new) : $new;
		if (\method_exists($account, 'resetPassword')) {
			$account->resetPassword($secret);
		} else if (\method_exists($account, 'SetPassword')) {
			$account->SetPassword($secret);
		}
		if (\method_exists($actions, 'SetAuthToken')) {
			$actions->SetAuthToken($account);
		}
		return $this->jsonResponse(__FUNCTION__, true);
	}
}
