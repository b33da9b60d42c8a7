<?php
/**
 * Snappymail plugin of the SlapOS mail bundle: an account changes its
 * password from the webmail's settings through the backend's account
 * database module (recipes.stores.accounts), never by writing the database itself.
 *
 * Installed as _data_/_default_/plugins/mailbundle-change-password/ with
 * config.json: {"command": [python, "-m", "recipes.programs.passwords",
 * "change-password", DIRECTORY]}. The address is appended to the command;
 * the current password, then the new one, go to its standard input (never
 * on a command line). Exit codes: 0 changed, 3 unknown user, 4 wrong
 * current password, 5 new password refused (the reason on standard error).
 *
 * Follows Snappymail 2.38's own change-password plugin (plugins/
 * change-password in its source): same error codes, same session update.
 *
 * It also tells Dovecot, before each IMAP login, the address of the browser
 * the login comes from (RFC 2971 ID, x-originating-ip; Dovecot takes it
 * from login_trusted_networks, the backend's own address), so that
 * Dovecot's penalty slows down a guesser by the guesser's address, not
 * every user of the webmail at once, and its log names the browser.
 *
 * It also names an account's identity after the account at its first
 * login (the address's local part), where Snappymail would open its "Edit
 * Identity" dialog over the inbox after every login until one is saved
 * (webmail.popup_identity, RainLoop/Providers/Identities.php).
 */

use RainLoop\Exceptions\ClientException;
use SnappyMail\SensitiveString;

class MailbundleChangePasswordPlugin extends \RainLoop\Plugins\AbstractPlugin
{
	const
		NAME = 'Mail bundle password',
		AUTHOR = 'SlapOS mail bundle',
		VERSION = '1.2',
		RELEASE = '2026-12-07',
		REQUIRED = '2.36.1',
		CATEGORY = 'Security',
		LICENSE = 'MIT',
		DESCRIPTION = 'Change the password in the mail backend\'s account database';

	// the codes of Snappymail's change-password plugin (not in Notifications)
	const
		CouldNotSaveNewPassword = 130,
		CurrentPasswordIncorrect = 131,
		NewPasswordShort = 132;

	public function Init() : void
	{
		$this->addJs('js/MailbundleChangePassword.js');
		$this->addTemplate('templates/MailbundleChangePasswordSettings.html');
		$this->addJsonHook('MailbundleChangePassword', 'DoChangePassword');
		$this->addHook('imap.after-connect', 'SendClientAddress');
		$this->addHook('login.success', 'NameTheIdentity');
	}

	/** Before the login: ID ("x-originating-ip" "<the browser's address>"). */
	public function SendClientAddress(\RainLoop\Model\Account $oAccount, \MailSo\Imap\ImapClient $oImapClient, $oSettings) : void
	{
		$sAddress = (string) ($_SERVER['REMOTE_ADDR'] ?? '');
		if ('' !== $sAddress && $oImapClient->hasCapability('ID')) {
			$oImapClient->SendRequestGetResponse('ID', [[
				$oImapClient->EscapeString('x-originating-ip'),
				$oImapClient->EscapeString($sAddress),
			]]);
		}
	}

	/** The identity Snappymail made up for a new account, named and kept. */
	public function NameTheIdentity(\RainLoop\Model\Account $oAccount) : void
	{
		$oProvider = $this->Manager()->Actions()->IdentitiesProvider();
		foreach ($oProvider->GetIdentities($oAccount, false) as $oIdentity) {
			if (!$oIdentity->exists) {
				$sEmail = $oAccount->Email();
				$oIdentity->SetName(\substr($sEmail, 0, \strrpos($sEmail, '@') ?: \strlen($sEmail)));
				$oIdentity->exists = true;
				$oProvider->UpdateIdentity($oAccount, $oIdentity);
			}
		}
	}

	/** [exit code, standard error] of the accounts module. */
	private static function run(string $address, string $current, string $new) : array
	{
		$config = \json_decode((string) \file_get_contents(__DIR__ . '/config.json'), true);
		if (!\is_array($config) || empty($config['command'])) {
			return [1, 'the plugin has no command (' . __DIR__ . '/config.json)'];
		}
		$command = \array_merge($config['command'], [$address]);
		$process = \proc_open($command, [
			0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w'],
		], $pipes, null, ['LANG' => 'C.UTF-8']);
		if (!\is_resource($process)) {
			return [1, 'the accounts module did not start'];
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
		$oActions = $this->Manager()->Actions();
		// the login's own account, not an additional one switched to
		$oAccount = $oActions->getMainAccountFromToken();
		$sPrevPassword = (string) $this->jsonParam('PrevPassword');
		$sNewPassword = (string) $this->jsonParam('NewPassword');
		if ('' === $sNewPassword) {
			throw new ClientException(static::NewPasswordShort, null, 'the new password is empty');
		}
		list($code, $error) = static::run($oAccount->Email(), $sPrevPassword, $sNewPassword);
		// the reason (standard error) starts with the address: not repeated
		$reason = \preg_replace('/^[^:]*: /', '', $error);
		if (4 === $code) {
			throw new ClientException(static::CurrentPasswordIncorrect, null, $reason);
		}
		if (5 === $code) {
			throw new ClientException(static::NewPasswordShort, null, $reason);
		}
		if (0 !== $code) {
			\trigger_error("mailbundle-change-password: exit {$code}: {$error}");
			throw new ClientException(static::CouldNotSaveNewPassword, null,
				'the password could not be changed');
		}
		// the session goes on with the new password (IMAP, SMTP and Sieve
		// logins), and the key of its encrypted data is sealed with it
		$oAccount->SetPassword(new SensitiveString($sNewPassword));
		$oActions->SetAuthToken($oAccount);
		try {
			$oAccount->resealCryptKey(new SensitiveString($sPrevPassword));
		} catch (\Throwable $oException) {
			// the password is changed all the same: only the encrypted
			// data of an earlier session (keys) becomes unreadable
			\trigger_error('mailbundle-change-password: ' . $oException->getMessage());
		}
		return $this->jsonResponse(__FUNCTION__, true);
	}
}
